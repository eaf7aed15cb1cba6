// Signatures with control flow (docs/artifact.md, "Control flow"): the checks
// the schema cannot state, the pieces handed to the backends as internal
// signatures, and the host-side interpreter of the programs. The same rules
// and messages as python/artifact_control.py.
//
// A hostile manifest must not hang or crash the loader: every value is defined
// once and used only after its definition inside its own program (pieces cannot
// feed themselves: no cycles); every program but the signature's is run by
// exactly one step and nests at most LIMITS.maxDepth deep (programs form a tree); a
// loop's maximum_iterations is at most LIMITS.maxIterations, and a run stops with an
// ArtifactError after that many loop iterations in all (the cap of a loop
// exported without maximum_iterations).

import { ArtifactError } from './artifact.js';

/**
 * The loader's caps: loop iterations per run (all loops together; also the
 * largest maximum_iterations it accepts) and programs nested in programs.
 * Tests lower maxIterations to reach the cap quickly.
 */
export const LIMITS = { maxIterations: 2 ** 20, maxDepth: 32 };

const pieceName = (name, k) => `${name}#${k}`;
const keyOf = (spec) => `${spec.dtype} [${spec.shape}]`;
const sizeOf = (shape) => shape.reduce((a, b) => a * b, 1);

/** Check every signature's "control" section (after the schema). */
export function checkControl(manifest, fail) {
  for (const [name, sig] of Object.entries(manifest.signatures)) {
    if (Object.hasOwn(sig, 'control')) checkOne(name, sig, manifest.variables, manifest.files, fail);
  }
}

function checkOne(name, sig, variables, files, fail) {
  const c = sig.control;
  const error = (msg) => fail(`manifest.json: signature '${name}' control: ${msg}`);
  const values = c.values;
  const spec = (i) => {
    if (i >= values.length) error(`value ${i} does not exist (${values.length} values)`);
    return values[i];
  };
  const specs = (ids) => ids.map((i) => keyOf(spec(i)));
  const same = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);
  const defined = new Set();
  const programsSeen = new Set();
  const piecesSeen = new Set();
  if (Object.hasOwn(sig, 'wasm') || Object.hasOwn(sig, 'webgpu')) {
    error('a signature with control flow has its code in its pieces, not "wasm"/"webgpu" sections');
  }
  values.forEach((v, i) => {
    if (4 * sizeOf(v.shape) > 2 ** 32) error(`values[${i}]: shape [${v.shape}] needs more than 4 GiB`);
  });
  c.pieces.forEach((p, k) => {
    for (const key of ['reads', 'writes']) {
      if (!(p[key] ?? []).every((i) => i < variables.length)) error(`pieces[${k}]: "${key}" must be indices into "variables"`);
    }
    if (p.wasm !== undefined && !Object.hasOwn(files, 'module.wasm')) error(`pieces[${k}] wasm needs module.wasm, which "files" does not list`);
    for (const kern of p.webgpu?.kernels ?? []) {
      if (!Object.hasOwn(files, kern.wgsl)) error(`pieces[${k}] webgpu names ${JSON.stringify(kern.wgsl)}, which "files" does not list`);
    }
  });
  const BOOL = 'bool []';

  function program(p, depth, bound = null) {
    if (p >= c.programs.length) error(`program ${p} does not exist (${c.programs.length} programs)`);
    if (programsSeen.has(p)) error(`program ${p} is used twice (programs form a tree: each is run by one step)`);
    if (depth > LIMITS.maxDepth) error(`programs nest more than ${LIMITS.maxDepth} deep`);
    programsSeen.add(p);
    const prog = c.programs[p];
    const at = `programs[${p}]`;
    if (bound !== null && !same(specs(prog.inputs), bound)) {
      error(`${at}.inputs: ${prog.inputs.length} values that do not match the ${bound.length} values bound to them (dtypes and shapes)`);
    }
    const scope = new Set();
    const define = (ids) => {
      for (const i of ids) {
        spec(i);
        if (defined.has(i)) error(`${at}: value ${i} is defined twice`);
        defined.add(i);
        scope.add(i);
      }
    };
    const use = (ids) => {
      for (const i of ids) if (!scope.has(i)) error(`${at}: value ${i} is used before it is defined in this program`);
      return specs(ids);
    };
    define(prog.inputs);
    prog.steps.forEach((step, j) => {
      const [[kind, s]] = Object.entries(step);
      const where = `${at}.steps[${j}]`;
      if (kind === 'piece') {
        if (s >= c.pieces.length || piecesSeen.has(s)) error(`${where}: piece ${s} ${piecesSeen.has(s) ? 'is run twice' : 'does not exist'}`);
        piecesSeen.add(s);
        use(c.pieces[s].inputs);
        define(c.pieces[s].outputs);
      } else if (kind === 'cond') {
        if (!same(use([s.pred]), [BOOL])) error(`${where}: the predicate must be a bool scalar`);
        const ops = use(s.operands);
        const res = s.branches.map((b) => program(b, depth + 1, ops));
        define(s.outputs);
        const outs = specs(s.outputs);
        if (!same(res[0], res[1]) || !same(res[0], outs)) error(`${where}: both branches must return values of the outputs' dtypes and shapes`);
      } else loop(s, where, depth, use, define);
    });
    return use(prog.outputs);
  }

  function loop(s, where, depth, use, define) {
    const vs = use(s.vars);
    use(s.seqs);
    const ops = use(s.operands);
    const seqs = s.seqs.map((i) => values[i]);
    const limit = s.maximum_iterations;
    if (limit !== undefined && limit > LIMITS.maxIterations) error(`${where}: maximum_iterations ${limit} is over this loader's cap of ${LIMITS.maxIterations}`);
    if (seqs.length) {
      const rows = new Set(seqs.map((q) => (q.shape.length ? q.shape[0] : null)));
      if (rows.has(null) || rows.size !== 1 || limit === undefined || limit > Math.min(...rows)) {
        error(`${where}: sequences need one first dimension of at least maximum_iterations`);
      }
    }
    if (s.cond !== undefined && !same(program(s.cond, depth + 1, [...vs, ...ops]), [BOOL])) {
      error(`${where}: the condition must return one bool scalar`);
    }
    const rowSpecs = seqs.map((q) => keyOf({ dtype: q.dtype, shape: q.shape.slice(1) }));
    const outs = program(s.body, depth + 1, [...vs, ...rowSpecs, ...ops]);
    const k = vs.length;
    const ys = outs.slice(k).map((key, m) => values[c.programs[s.body].outputs[k + m]]);
    if (!same(outs.slice(0, k), vs) || ys.some((y) => y.shape[0] !== 1 || y.shape.length === 0)) {
      error(`${where}: the body must return the loop variables' dtypes and shapes, then [1, ...] rows`);
    }
    if (ys.length && limit === undefined) error(`${where}: stacked per-iteration values need maximum_iterations`);
    if (s.length && limit !== sig.length?.maximum) error(`${where}: a loop over the length needs a "length" section whose maximum is its maximum_iterations`);
    define(s.outputs);
    const want = [...vs, ...ys.map((y) => keyOf({ dtype: y.dtype, shape: [limit, ...y.shape.slice(1)] }))];
    if (!same(specs(s.outputs), want)) error(`${where}: the outputs must be the loop variables, then the rows stacked [maximum_iterations, ...]`);
  }

  const top = c.programs[0];
  if (!same(specs(top.inputs), sig.inputs.map(keyOf))) error("programs[0].inputs must be values of the signature's inputs' dtypes and shapes");
  const outs = program(0, 1);
  if (!same(outs, sig.outputs.map(keyOf))) error("programs[0].outputs must be values of the signature's outputs' dtypes and shapes");
  for (const [variable, v] of c.updates ?? []) {
    if (variable >= variables.length) error(`updates: there is no variable ${variable}`);
    if (!defined.has(v) || keyOf(values[v]) !== keyOf(variables[variable])) {
      error(`updates: value ${v} is not a value of the program of variable ${variable}'s dtype and shape`);
    }
  }
}

/**
 * The manifest the backends read: each signature with control flow replaced
 * by its pieces, internal signatures '<signature>#<k>' whose inputs and
 * outputs are named 'v<value id>'.
 */
export function expandControl(manifest, fail) {
  const signatures = {};
  for (const [name, sig] of Object.entries(manifest.signatures)) {
    if (!Object.hasOwn(sig, 'control')) {
      signatures[name] = sig;
      continue;
    }
    const c = sig.control;
    const spec = (i) => ({ name: `v${i}`, dtype: c.values[i].dtype, shape: c.values[i].shape });
    c.pieces.forEach((p, k) => {
      const piece = pieceName(name, k);
      if (Object.hasOwn(manifest.signatures, piece)) fail(`manifest.json: signature '${piece}' has the name of piece ${k} of signature '${name}'`);
      const entry = { inputs: p.inputs.map(spec), outputs: p.outputs.map(spec) };
      for (const key of ['reads', 'writes', 'wasm', 'webgpu']) if (Object.hasOwn(p, key)) entry[key] = p[key];
      signatures[piece] = entry;
    });
  }
  return { ...manifest, signatures };
}

const truth = (data) => data[0] !== 0 || data[1] !== 0 || data[2] !== 0 || data[3] !== 0; // bool: an int32 0/1

/**
 * Run signature `name`'s programs on `backend` (its pieces run as internal
 * signatures); `inputs` and the result are storage bytes (Uint8Array). The
 * updates are written to the variables at the end. `length`: for a signature
 * with a 'length' section, the run's length (its loops marked 'length' run at
 * most that many iterations; docs/artifact.md "Symbolic length").
 */
export async function runControl(name, control, backend, inputs, length = undefined) {
  const env = new Map();
  let budget = LIMITS.maxIterations;
  const { programs, pieces, values } = control;
  const get = (ids) => ids.map((i) => env.get(i));
  const bind = (ids, datas) => ids.forEach((i, k) => env.set(i, datas[k]));

  async function program(p, args) {
    const prog = programs[p];
    bind(prog.inputs, args);
    for (const step of prog.steps) {
      const [[kind, s]] = Object.entries(step);
      if (kind === 'piece') bind(pieces[s].outputs, await backend.run(pieceName(name, s), get(pieces[s].inputs)));
      else if (kind === 'cond') bind(s.outputs, await program(s.branches[truth(env.get(s.pred)) ? 1 : 0], get(s.operands)));
      else bind(s.outputs, await loop(s));
    }
    return get(prog.outputs);
  }

  async function loop(s) {
    let vs = get(s.vars);
    const ops = get(s.operands);
    const seqs = get(s.seqs);
    const rows = seqs.length ? values[s.seqs[0]].shape[0] : 0;
    const steps = s.length ? length : undefined; // a loop over the length: its first rows
    const end = steps === undefined ? rows : steps;
    const limit = steps === undefined ? s.maximum_iterations : Math.min(s.maximum_iterations, steps);
    const test = async (v) => s.cond === undefined || truth((await program(s.cond, [...v, ...ops]))[0]);
    const k = vs.length;
    const ys = [];
    let i = 0;
    let go = limit !== 0 && await test(vs);
    while (go && (limit === undefined || i < limit)) {
      if (--budget < 0) throw new ArtifactError(`webtensor: signature '${name}': its loops ran more than ${LIMITS.maxIterations} iterations in one run (this loader's cap)`);
      const t = s.reverse ? end - 1 - i : i;
      const at = seqs.map((q) => { const n = q.length / rows; return q.slice(t * n, (t + 1) * n); });
      const outs = await program(s.body, [...vs, ...at, ...ops]);
      vs = outs.slice(0, k);
      ys.push(outs.slice(k));
      i++;
      go = await test(vs);
    }
    const stacked = s.outputs.slice(k).map((out, m) => {
      const all = new Uint8Array(4 * sizeOf(values[out].shape));
      const n = all.length / Math.max(values[out].shape[0], 1);
      ys.forEach((y, j) => all.set(y[m], (s.reverse ? limit - 1 - j : j) * n)); // rows that did not run stay zeros
      return all;
    });
    return [...vs, ...stacked];
  }

  const outs = await program(0, inputs);
  for (const [variable, v] of control.updates ?? []) await backend.writeVariable(variable, env.get(v));
  return outs;
}
