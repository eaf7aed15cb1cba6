// WebGPU backend: variable buffers once per model, each signature's other
// buffers, pipelines and bind groups once per signature; a run writes the
// inputs, encodes every dispatch in one pass, copies the outputs to one
// staging buffer, submits once and maps it (docs/artifact.md, "WebGPU section").
// Kernels with "rows" take the number of rows from a uniform and their dispatch
// is computed per run, so a last partial chunk runs its own rows
// (docs/artifact.md, "Run-time rows: WebGPU").

import { storageBytes } from '../artifact.js';
import { toStorage } from '../tensor.js';

// GPUBufferUsage, GPUShaderStage and GPUMapMode values (WebGPU spec), so that
// Node needs no globals from the `webgpu` package.
const MAP_READ = 0x1, COPY_SRC = 0x4, COPY_DST = 0x8, UNIFORM = 0x40, STORAGE = 0x80;
const COMPUTE = 0x4;
const MAP_MODE_READ = 0x1;
const ROLES = ['input', 'output', 'variable', 'temp', 'const'];
const FEATURE_OF_ENABLE = { f16: 'shader-f16' }; // WGSL `enable` name -> feature name, where they differ

const align4 = (n) => Math.max(4, Math.ceil(n / 4) * 4);

/**
 * The bindings of a kernel entry: Map binding -> {group, type, space}, type
 * being the bind group layout's buffer type ('storage' | 'read-only-storage').
 * From its "access" (one entry per binding: @group(0) @binding(b)
 * var<storage, access>), checked against its "bindings"; WebGPU then checks
 * the layout against the shader when the pipeline is created. Artifacts
 * exported before "access" existed fall back to legacyWgslBindings.
 */
export function declaredBindings(kernel, source, fail) {
  if (kernel.access === undefined) return legacyWgslBindings(source);
  const { access, bindings } = kernel;
  if (!Array.isArray(access) || !access.every((a) => a === 'read' || a === 'read_write')) {
    fail(`manifest.json: ${kernel.wgsl}: "access" must be an array of 'read' | 'read_write'`);
  }
  if (access.length !== bindings.length) fail(`manifest.json: ${kernel.wgsl}: "access" lists ${access.length} bindings, "bindings" ${bindings.length}`);
  return new Map(access.map((a, b) => [b, { group: 0, type: a === 'read_write' ? 'storage' : 'read-only-storage', space: 'storage' }]));
}

/**
 * LEGACY (artifacts exported before kernels carried "access"): the bindings a
 * WGSL source declares, from its `@group(g) @binding(b) var<space, access>`
 * lines, as declaredBindings returns them.
 */
export function legacyWgslBindings(source) {
  const code = source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/[^\n]*/g, '');
  const out = new Map();
  for (const m of code.matchAll(/((?:@\s*\w+\s*(?:\([^)]*\))?\s*)+)var\s*<\s*(\w+)\s*(?:,\s*(\w+)\s*)?>/g)) {
    const group = /@\s*group\s*\(\s*(\d+)/.exec(m[1]);
    const binding = /@\s*binding\s*\(\s*(\d+)/.exec(m[1]);
    if (!group || !binding) continue;
    const type = m[2] === 'uniform' ? 'uniform' : m[3] === 'read_write' ? 'storage' : 'read-only-storage';
    out.set(Number(binding[1]), { group: Number(group[1]), type, space: m[2] });
  }
  return out;
}

/**
 * Workgroups a kernel with "rows" [a, b, c] needs for `rows` rows: ceil(rows * a / b) * c,
 * exact (BigInt: rows * a may pass 2^53 in a hostile manifest), as a Number.
 */
export function rowsTotal(rows, [a, b, c]) {
  const [r, x, y, z] = [rows, a, b, c].map(BigInt);
  return Number(((r * x + y - 1n) / y) * z);
}

/**
 * The dispatch of a kernel with "rows" `formula` for `rows` rows: rowsTotal
 * workgroups folded as its chunk's `dispatch` folds them (its x, then its y),
 * so the shader numbers them as in a whole chunk (webgpu/emit.py
 * rows_workgroups); never more per dimension than `dispatch`.
 */
export function rowsDispatch(rows, formula, dispatch) {
  const total = rowsTotal(rows, formula);
  const [x, y = 1] = dispatch;
  if (total <= x) return [total, 1, 1];
  if (total <= x * y) return [x, Math.ceil(total / x), 1];
  return [x, y, Math.ceil(total / (x * y))];
}

/** The WebGPU features a WGSL source's `enable` directives need. */
function wgslFeatures(source) {
  const names = [...source.matchAll(/^\s*enable\s+([\w\s,]+);/gm)].flatMap((m) => m[1].split(',').map((s) => s.trim()));
  return names.filter(Boolean).map((n) => FEATURE_OF_ENABLE[n] ?? n);
}

/** A plain copy of a GPUSupportedLimits object (its attributes are prototype getters). */
export function copyLimits(limits) {
  const out = {};
  for (const key in limits) if (typeof limits[key] === 'number') out[key] = limits[key];
  return out;
}

/** null when `limits` meet `required` (max* limits at least, min* alignments at most); else the first shortfall as text. */
function limitShortfall(required, limits) {
  for (const [key, need] of Object.entries(required ?? {})) {
    const have = limits[key];
    if (typeof have !== 'number') return `${key} (unknown limit on this adapter)`;
    if (key.startsWith('min') ? have > need : have < need) return `${key} ${need} (the adapter offers ${have})`;
  }
  return null;
}

/**
 * Why this artifact cannot run on an adapter/device with `limits` and
 * `features` (a signature without WebGPU code, a required limit or WGSL
 * feature it lacks), or null if it can. `load` with backend 'auto' uses this
 * to fall back to WebAssembly.
 */
export function webgpuShortfall({ manifest, files }, limits, features) {
  const wgsl = new Set();
  for (const [name, sig] of Object.entries(manifest.signatures)) {
    if (!sig.webgpu) return `signature '${name}' has no WebGPU code`;
    const short = limitShortfall(sig.webgpu.required_limits, limits);
    if (short) return `signature '${name}' requires ${short}`;
    for (const k of sig.webgpu.kernels) wgsl.add(k.wgsl);
  }
  for (const file of wgsl) {
    for (const f of wgslFeatures(new TextDecoder().decode(files.get(file)))) {
      if (!features.has(f)) return `${file} needs the WebGPU feature '${f}'`;
    }
  }
  return null;
}

const SOFTWARE_ADAPTER = /swiftshader|llvmpipe|lavapipe|\bwarp\b|microsoft basic render/i;

/**
 * Whether a GPUAdapterInfo (adapter.info, device.adapterInfo) describes a
 * software adapter that renders on the CPU: a fallback adapter
 * (`isFallbackAdapter`), or SwiftShader, llvmpipe, lavapipe or WARP
 * ("Microsoft Basic Render Driver") by vendor, architecture, device or
 * description. `load` with backend 'auto' runs on WebAssembly there: it is
 * faster on the same CPU.
 */
export function isSoftwareAdapter(info) {
  if (!info) return false;
  if (info.isFallbackAdapter === true) return true;
  return ['vendor', 'architecture', 'device', 'description'].some((k) => typeof info[k] === 'string' && SOFTWARE_ADAPTER.test(info[k]));
}

/**
 * Check every signature's "webgpu" section against `limits` and `features`
 * (a GPUSupportedLimits/-Features of the adapter or device) without creating
 * anything. Returns {features: [needed feature names], bindingsOf: Map wgsl
 * file -> source, layoutOf: Map kernel entry -> declaredBindings}. Throws via
 * `fail` naming the signature, kernel and problem.
 */
export function checkWebGPU({ manifest, files, weights }, fail, limits, features) {
  const { variables, signatures } = manifest;
  const decoder = new TextDecoder();
  const bindingsOf = new Map(); // wgsl file -> source
  const layoutOf = new Map(); // kernel entry -> declaredBindings
  const needed = new Set();
  const maxBuffer = Math.min(limits.maxStorageBufferBindingSize, limits.maxBufferSize ?? Infinity);
  for (const [name, sig] of Object.entries(signatures)) {
    const w = sig.webgpu;
    const what = `signature '${name}' webgpu`;
    if (w === null || typeof w !== 'object') fail(`manifest.json: ${what}: section is missing (this artifact has no WebGPU code for it)`);
    if (w.required_limits !== undefined && (w.required_limits === null || typeof w.required_limits !== 'object' || Array.isArray(w.required_limits))) {
      fail(`manifest.json: ${what}: "required_limits" must be an object {limit name: value}`);
    }
    const shortfall = limitShortfall(w.required_limits, limits);
    if (shortfall) fail(`${what}: the artifact requires ${shortfall}`);
    if (!Array.isArray(w.buffers)) fail(`manifest.json: ${what}: "buffers" must be an array`);
    const seen = { input: new Set(), output: new Set() };
    w.buffers.forEach((b, k) => {
      const at = `manifest.json: ${what} buffers[${k}]`;
      if (b === null || typeof b !== 'object' || !ROLES.includes(b.role)) fail(`${at}: role must be one of ${ROLES.join(', ')}`);
      if (!Number.isInteger(b.bytes) || b.bytes < 0) fail(`${at}: "bytes" must be a non-negative integer`);
      if (align4(b.bytes) > maxBuffer) fail(`${what}: buffers[${k}] has ${b.bytes} bytes, over this device's maxStorageBufferBindingSize/maxBufferSize ${maxBuffer}`);
      let spec = null;
      if (b.role === 'input' || b.role === 'output') {
        spec = sig[`${b.role}s`][b.index];
        if (!spec) fail(`${at}: no ${b.role} ${JSON.stringify(b.index)}`);
        if (seen[b.role].has(b.index)) fail(`${at}: ${b.role} ${b.index} has two buffers`);
        seen[b.role].add(b.index);
      } else if (b.role === 'variable') {
        spec = variables[b.index];
        if (!Number.isInteger(b.index) || !spec) fail(`${at}: no variable ${JSON.stringify(b.index)}`);
      } else if (b.role === 'const') {
        spec = weights.get(b.data);
        if (typeof b.data !== 'string' || !spec) fail(`weights.safetensors: constant ${JSON.stringify(b.data)} (${what} buffers[${k}]) is missing`);
      }
      if (spec && b.bytes < storageBytes(spec)) fail(`${at}: ${b.bytes} bytes cannot hold [${spec.shape}] ${spec.dtype} (${storageBytes(spec)} bytes)`);
    });
    for (const role of ['input', 'output']) {
      sig[`${role}s`].forEach((spec, k) => {
        if (!seen[role].has(k)) fail(`manifest.json: ${what}: no buffer for ${role} ${k} ('${spec.name}')`);
      });
    }
    w.kernels.forEach((kernel, k) => {
      const at = `${what} kernels[${k}] (${kernel.wgsl})`;
      if (typeof kernel.entry_point !== 'string') fail(`manifest.json: ${at}: "entry_point" must be a string`);
      const { bindings, dispatch } = kernel;
      if (!Array.isArray(bindings) || !bindings.every((i) => Number.isInteger(i) && w.buffers[i])) {
        fail(`manifest.json: ${at}: "bindings" must be indices into buffers (0..${w.buffers.length - 1})`);
      }
      if (!Array.isArray(dispatch) || dispatch.length < 1 || dispatch.length > 3 || !dispatch.every((n) => Number.isInteger(n) && n >= 0)) {
        fail(`manifest.json: ${at}: "dispatch" must be 1 to 3 non-negative integers`);
      }
      if (dispatch.some((n) => n > limits.maxComputeWorkgroupsPerDimension)) {
        fail(`${at}: dispatch [${dispatch}] exceeds maxComputeWorkgroupsPerDimension ${limits.maxComputeWorkgroupsPerDimension}`);
      }
      if (bindings.length > limits.maxStorageBuffersPerShaderStage) {
        fail(`${at}: ${bindings.length} storage buffers exceed maxStorageBuffersPerShaderStage ${limits.maxStorageBuffersPerShaderStage}`);
      }
      if (kernel.rows !== undefined) {
        const { rows } = kernel;
        if (sig.batch === undefined) fail(`manifest.json: ${at}: "rows" needs a "batch" section (a symbolic batch)`);
        if (kernel.access === undefined) fail(`manifest.json: ${at}: "rows" needs "access"`);
        if (!Array.isArray(rows) || rows.length !== 3 || !rows.every((n) => Number.isInteger(n) && n >= 1 && n <= 0x7fffffff)) {
          fail(`manifest.json: ${at}: "rows" must be 3 integers in [1, 2^31 - 1]`);
        }
        const { chunk } = sig.batch;
        if (rowsTotal(chunk, rows) > dispatch.reduce((p, n) => p * n, 1)) {
          fail(`manifest.json: ${at}: "rows" [${rows}] asks for more workgroups at ${chunk} rows than its dispatch [${dispatch}]`);
        }
      }
      if (!bindingsOf.has(kernel.wgsl)) {
        const source = decoder.decode(files.get(kernel.wgsl));
        bindingsOf.set(kernel.wgsl, source);
        for (const f of wgslFeatures(source)) needed.add(f);
      }
      const declared = declaredBindings(kernel, bindingsOf.get(kernel.wgsl), fail);
      layoutOf.set(kernel, declared);
      for (const [b, d] of declared) {
        if (d.group !== 0) fail(`${kernel.wgsl}: @group(${d.group}) is not supported (all bindings are in @group(0))`);
        if (d.space !== 'storage') fail(`${kernel.wgsl}: @binding(${b}) is var<${d.space}>; kernels bind storage buffers only`);
        if (b >= bindings.length) fail(`${at}: the shader declares @binding(${b}), but the kernel lists ${bindings.length} bindings`);
      }
      bindings.forEach((buf, b) => {
        if (!declared.has(b)) fail(`${at}: the kernel lists binding ${b}, but the shader declares no @group(0) @binding(${b})`);
        if (declared.get(b).type === 'storage' && bindings.some((other, c) => c !== b && other === buf)) {
          fail(`${at}: buffers[${buf}] is bound twice and written (WebGPU forbids writable aliasing)`);
        }
      });
    });
  }
  for (const f of needed) if (!features.has(f)) fail(`the WGSL kernels need the WebGPU feature '${f}', which this adapter/device lacks`);
  return { features: [...needed], bindingsOf, layoutOf };
}

/**
 * Create the WebGPU backend on `device` (or a new device from `adapter`
 * with the adapter's limits). On any failure everything created so far is
 * destroyed (the device too, if created here) and an Error names the cause.
 * The backend holds `gpu` (the GPU object `adapter` came from) and `adapter`
 * until dispose(): Dawn in Node (npm `webgpu`) tears its instance down when
 * the GPU object is garbage-collected, under a live device.
 */
export async function createWebGPUBackend(artifact, fail, { gpu = null, adapter, device: given }) {
  const { manifest, files, weights } = artifact;
  const target = given ?? adapter;
  const { features, bindingsOf, layoutOf } = checkWebGPU(artifact, fail, target.limits, target.features);
  const backend = new WebGPUBackend(manifest);
  backend.gpu = gpu;
  backend.adapter = adapter;
  try {
    try {
      backend.device = given ?? await adapter.requestDevice({
        label: 'webtensor',
        requiredLimits: copyLimits(adapter.limits),
        requiredFeatures: features,
      });
    } catch (e) {
      fail(`requesting a WebGPU device with the adapter's limits failed (${e.message})`);
    }
    backend.owned = !given;
    const { device } = backend;
    device.pushErrorScope('out-of-memory');
    device.pushErrorScope('validation');
    let failure = null;
    try {
      await backend.build(files, weights, bindingsOf, layoutOf, fail);
    } catch (e) {
      failure = e;
    }
    const validation = await device.popErrorScope(); // always pop: `device` may be the caller's
    const oom = await device.popErrorScope();
    if (failure) throw failure;
    if (validation || oom) fail(`WebGPU ${validation ? 'validation' : 'out-of-memory'} error while creating buffers and pipelines: ${(validation ?? oom).message}`);
  } catch (e) {
    backend.dispose();
    throw e;
  }
  return backend;
}

class WebGPUBackend {
  constructor(manifest) {
    this.kind = 'webgpu';
    this.manifest = manifest;
    this.gpu = null; // kept alive with the device: see createWebGPUBackend
    this.adapter = null;
    this.device = null;
    this.owned = false;
    this.live = new Set(); // every buffer this backend created and has not destroyed
    this.lost = null;
  }

  buffer(size, usage, label) {
    const b = this.device.createBuffer({ size: align4(size), usage, label });
    this.live.add(b);
    return b;
  }

  async build(files, weights, bindingsOf, layoutOf, fail) {
    const { device } = this;
    const { variables, signatures } = this.manifest;
    device.lost.then((info) => { this.lost = info.message || info.reason || 'unknown reason'; });

    // variables: one buffer each, shared by every signature
    const varBytes = variables.map((v, i) => Math.max(storageBytes(v), ...Object.values(signatures).flatMap(
      (s) => s.webgpu.buffers.filter((b) => b.role === 'variable' && b.index === i).map((b) => b.bytes))));
    this.variableBuffers = variables.map((v, i) => {
      const b = this.buffer(varBytes[i], STORAGE | COPY_SRC | COPY_DST, v.name);
      device.queue.writeBuffer(b, 0, toStorage(weights.get(v.name).bytes, v.dtype));
      return b;
    });
    this.variableOffsets = varBytes.map((_, i) => varBytes.slice(0, i).reduce((a, n) => a + align4(n), 0));
    this.variableStaging = this.buffer(varBytes.reduce((a, n) => a + align4(n), 0), MAP_READ | COPY_DST, 'variables staging');

    const modules = new Map();
    for (const file of bindingsOf.keys()) {
      const module = device.createShaderModule({ code: new TextDecoder().decode(files.get(file)), label: file });
      const info = module.getCompilationInfo ? await module.getCompilationInfo() : { messages: [] };
      const errors = info.messages.filter((m) => m.type === 'error');
      if (errors.length) fail(`${file}: WGSL does not compile: ${errors.map((m) => `${m.lineNum}:${m.linePos}: ${m.message}`).join('; ')}`);
      modules.set(file, module);
    }

    this.signatures = new Map();
    for (const [name, sig] of Object.entries(signatures)) {
      const buffers = sig.webgpu.buffers.map((b, k) => {
        const label = `${name} buffers[${k}] ${b.role}`;
        if (b.role === 'variable') return this.variableBuffers[b.index];
        if (b.role === 'input') return this.buffer(b.bytes, STORAGE | COPY_DST, label);
        if (b.role === 'output') return this.buffer(b.bytes, STORAGE | COPY_SRC, label);
        const buf = this.buffer(b.bytes, b.role === 'const' ? STORAGE | COPY_DST : STORAGE, label);
        if (b.role === 'const') {
          const t = weights.get(b.data);
          device.queue.writeBuffer(buf, 0, toStorage(t.bytes, t.dtype));
        }
        return buf;
      });
      // run-time rows: one uniform (the rows, u32) per signature, bound after the storage bindings
      const uniform = sig.webgpu.kernels.some((k) => k.rows !== undefined) ? this.buffer(16, UNIFORM | COPY_DST, `${name} rows`) : null;
      // explicit layouts: layout 'auto' would drop bindings a shader declares but does not use
      const layouts = sig.webgpu.kernels.map((kernel, k) => device.createBindGroupLayout({
        label: `${name} kernels[${k}]`,
        entries: kernel.bindings.map((_, b) => ({ binding: b, visibility: COMPUTE, buffer: { type: layoutOf.get(kernel).get(b).type } }))
          .concat(kernel.rows === undefined ? [] : [{ binding: kernel.bindings.length, visibility: COMPUTE, buffer: { type: 'uniform' } }]),
      }));
      const pipelines = await Promise.allSettled(sig.webgpu.kernels.map((kernel, k) => device.createComputePipelineAsync({
        label: `${name} kernels[${k}] ${kernel.wgsl}`,
        layout: device.createPipelineLayout({ bindGroupLayouts: [layouts[k]] }),
        compute: { module: modules.get(kernel.wgsl), entryPoint: kernel.entry_point },
      })));
      const kernels = sig.webgpu.kernels.map((kernel, k) => {
        const { status, value, reason } = pipelines[k];
        if (status === 'rejected') fail(`signature '${name}' webgpu kernels[${k}] (${kernel.wgsl}): cannot create the pipeline (${String(reason?.message ?? reason).trim()})`);
        const bindGroup = device.createBindGroup({
          layout: layouts[k],
          entries: kernel.bindings.map((i, b) => ({ binding: b, resource: { buffer: buffers[i] } }))
            .concat(kernel.rows === undefined ? [] : [{ binding: kernel.bindings.length, resource: { buffer: uniform } }]),
        });
        return { pipeline: value, bindGroup, dispatch: kernel.dispatch, rows: kernel.rows ?? null };
      });
      const io = (role) => sig[`${role}s`].map((spec, k) => buffers[sig.webgpu.buffers.findIndex((b) => b.role === role && b.index === k)]);
      const outputBytes = sig.outputs.map(storageBytes);
      const offsets = outputBytes.map((_, k) => outputBytes.slice(0, k).reduce((a, n) => a + align4(n), 0));
      const stagingBytes = outputBytes.reduce((a, n) => a + align4(n), 0);
      this.signatures.set(name, {
        kernels,
        inputs: io('input'),
        outputs: io('output').map((buffer, k) => ({ buffer, offset: offsets[k], bytes: outputBytes[k] })),
        staging: stagingBytes ? this.buffer(stagingBytes, MAP_READ | COPY_DST, `${name} staging`) : null,
        uniform,
        chunk: sig.batch?.chunk,
        whole: sig.batch?.rows_input !== undefined, // a train step's outputs have no rows
      });
    }
  }

  check(what) {
    if (this.lost) throw new Error(`webtensor: ${what}: the WebGPU device was lost (${this.lost})`);
  }

  /**
   * Call `encode(encoder)` (which may also queue writeBuffer calls), submit
   * its commands, then map `staging` and resolve to a copy of its bytes.
   */
  async submit(what, encode, staging) {
    this.check(what);
    const { device } = this;
    device.pushErrorScope('validation');
    const encoder = device.createCommandEncoder();
    encode(encoder);
    device.queue.submit([encoder.finish()]);
    const popped = device.popErrorScope();
    const mapped = staging && staging.mapAsync(MAP_MODE_READ).then(() => null, (e) => e);
    const [error, mapError] = await Promise.all([popped, mapped]);
    if (error) {
      if (staging && !mapError) staging.unmap();
      throw new Error(`webtensor: ${what}: WebGPU validation error: ${error.message}`);
    }
    if (mapError) throw new Error(`webtensor: ${what}: reading back failed (${mapError.message})`);
    if (!staging) return null;
    const bytes = new Uint8Array(staging.getMappedRange()).slice();
    staging.unmap();
    return bytes;
  }

  /** Whether signature `name` runs fewer rows than its chunk (run()'s `rows`: kernels with "rows"). */
  takesRows(name) {
    return this.signatures.get(name)?.uniform != null;
  }

  /** The workgroup counts a run of `rows` rows (undefined: the whole chunk) dispatches, per kernel. */
  dispatches(name, rows = undefined) {
    return this.signatures.get(name).kernels.map((k) => (rows === undefined || k.rows === null ? k.dispatch : rowsDispatch(rows, k.rows, k.dispatch)));
  }

  /**
   * Write `inputs` (storage bytes), run, read the outputs. `rows` (where
   * takesRows(name); 1 <= rows <= chunk): the inputs and outputs hold the
   * first `rows` rows only. (`views` is the wasm backend's; outputs here are
   * always copies.)
   */
  async run(name, inputs, views = false, rows = undefined) {
    const sig = this.signatures.get(name);
    if (rows !== undefined && !(this.takesRows(name) && Number.isInteger(rows) && rows >= 1 && rows <= sig.chunk)) {
      throw new Error(`webtensor: signature '${name}' cannot run ${rows} rows`);
    }
    const outputs = sig.outputs.map((o) => ({ ...o, bytes: rows === undefined || sig.whole ? o.bytes : o.bytes / sig.chunk * rows }));
    const dispatches = this.dispatches(name, rows);
    const bytes = await this.submit(`signature '${name}'`, (encoder) => {
      inputs.forEach((data, k) => this.device.queue.writeBuffer(sig.inputs[k], 0, data));
      if (sig.uniform) this.device.queue.writeBuffer(sig.uniform, 0, new Uint32Array([rows ?? sig.chunk]));
      const pass = encoder.beginComputePass();
      sig.kernels.forEach((k, i) => {
        pass.setPipeline(k.pipeline);
        pass.setBindGroup(0, k.bindGroup);
        pass.dispatchWorkgroups(...dispatches[i]);
      });
      pass.end();
      for (const o of outputs) if (o.bytes) encoder.copyBufferToBuffer(o.buffer, 0, sig.staging, o.offset, align4(o.bytes));
    }, sig.staging);
    return outputs.map((o) => bytes.subarray(o.offset, o.offset + o.bytes));
  }

  async readVariables(indices) {
    const { variables } = this.manifest;
    const bytes = await this.submit('reading variables', (encoder) => {
      for (const i of indices) {
        encoder.copyBufferToBuffer(this.variableBuffers[i], 0, this.variableStaging, this.variableOffsets[i], align4(storageBytes(variables[i])));
      }
    }, this.variableStaging);
    return indices.map((i) => bytes.subarray(this.variableOffsets[i], this.variableOffsets[i] + storageBytes(variables[i])));
  }

  writeVariable(i, data) {
    this.check('writing variables');
    if (data.length) this.device.queue.writeBuffer(this.variableBuffers[i], 0, data);
  }

  stats() {
    let bytes = 0;
    for (const b of this.live) bytes += b.size;
    return { gpuBuffers: this.live.size, gpuBufferBytes: bytes };
  }

  dispose() {
    for (const b of this.live) b.destroy();
    this.live.clear();
    if (this.owned && this.device) this.device.destroy();
    this.device = null;
    this.adapter = null;
    this.gpu = null;
    this.lost = this.lost ?? 'the model was disposed';
  }
}
