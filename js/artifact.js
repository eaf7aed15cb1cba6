// Read an artifact (docs/artifact.md, format version 1) and check it before
// anything is created: the manifest against docs/artifact.schema.json, every
// listed file's presence, size and SHA-256 (before parsing), the manifest's
// cross-references, and the weights. Every byte is hostile until checked.

import { checkControl } from './control.js';
import SCHEMA from './artifact_schema.js';
import { SchemaError, validate } from './schema.js';
import { parseSafetensors } from './safetensors.js';
import { sizeOf } from './tensor.js';

// the format's name and version, as docs/artifact.schema.json (the one contract) states them
export const FORMAT = SCHEMA.properties.format.const;
/** The manifest versions this runtime reads (1; 2 adds signatures' 'batch' sections), and the newest. */
export const FORMAT_VERSIONS = SCHEMA.properties.format_version.enum;
export const FORMAT_VERSION = Math.max(...FORMAT_VERSIONS);
const MAX_FILE_BYTES = 2 ** 32; // docs/artifact.schema.json's limit on any listed file

/** Limits on what a loader reads (docs/artifact.md, "Loading untrusted artifacts"). */
export const MAX_MANIFEST_BYTES = 16 * 2 ** 20;

/**
 * A damaged, malformed, hostile or unsupported artifact (the same class name
 * as the Python runtime's). The message names the file or variable, and never
 * quotes the size, hash or contents of a file that failed a check.
 */
export class ArtifactError extends Error {
  constructor(message) {
    super(message);
    this.name = 'ArtifactError';
  }
}

/**
 * Read a Response body of at most `maxBytes` bytes: a longer one (by its
 * Content-Length or as it streams) is cancelled after maxBytes + 1 bytes.
 * Returns the bytes (maxBytes + 1 of them when the body is longer).
 */
async function boundedBody(response, maxBytes) {
  const declared = Number(response.headers.get('content-length') ?? NaN);
  if (declared > maxBytes || !response.body) {
    await response.body?.cancel();
    return new Uint8Array(declared > maxBytes ? maxBytes + 1 : 0);
  }
  const out = new Uint8Array(maxBytes + 1);
  let n = 0;
  const reader = response.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    const take = Math.min(value.length, out.length - n);
    out.set(value.subarray(0, take), n);
    n += take;
    if (n > maxBytes) {
      await reader.cancel();
      break;
    }
  }
  return out.subarray(0, n);
}

/**
 * A reader for an artifact directory at a URL (browser entry, and http(s) in
 * Node): `read(name, maxBytes)` resolves to the file's bytes (at most
 * maxBytes + 1), or null if missing. Every name resolves against the
 * directory's URL and must stay under it (same origin, same path prefix);
 * redirects are refused, so a manifest can never make the loader contact
 * another host or port.
 */
export function urlReader(url) {
  const base = new URL(String(url).replace(/\/*$/, '/'), globalThis.location?.href);
  return async (name, maxBytes) => {
    const target = new URL(name, base);
    if (target.origin !== base.origin || !target.href.startsWith(base.href)) {
      throw new ArtifactError(`${name} does not resolve inside the artifact's URL`);
    }
    const response = await fetch(target, { redirect: 'error', credentials: 'same-origin' });
    if (response.status === 404 || response.status === 410) {
      await response.body?.cancel();
      return null;
    }
    if (!response.ok) {
      await response.body?.cancel();
      throw new Error(`HTTP ${response.status} ${response.statusText}`);
    }
    return boundedBody(response, maxBytes);
  };
}

/** A reader for `{'manifest.json': Uint8Array | ArrayBuffer, ...}` (or a Map of the same). */
export function objectReader(files) {
  return async (name) => {
    const data = files instanceof Map ? files.get(name) : Object.hasOwn(files, name) ? files[name] : undefined;
    if (data === undefined || data === null) return null;
    if (data instanceof ArrayBuffer) return new Uint8Array(data);
    if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    if (typeof data === 'string') return new TextEncoder().encode(data);
    throw new Error(`expected a Uint8Array or ArrayBuffer, got ${Object.prototype.toString.call(data)}`);
  };
}

async function sha256Hex(bytes) {
  if (!globalThis.crypto?.subtle) throw new Error('checking SHA-256 needs crypto.subtle (WebCrypto; in browsers a secure context)');
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
}

/**
 * Read and check an artifact. `read(name, maxBytes)` resolves to the file's
 * bytes (a reader may stop after maxBytes + 1) or null when it is missing;
 * `where` names the artifact in errors. Order of checks: manifest.json (at
 * most 16 MiB, UTF-8 JSON) against docs/artifact.schema.json; each listed
 * file's size and SHA-256; the references between sections; the weights.
 * Resolves to `{manifest, files: Map name -> Uint8Array, weights: Map name ->
 * {dtype, shape, bytes}}`. Throws an ArtifactError `webtensor: artifact
 * <where>: <file or variable>: <what is wrong>` for any damage.
 */
export async function readArtifact(read, where) {
  const fail = (msg) => { throw new ArtifactError(`webtensor: artifact ${where}: ${msg}`); };
  const get = async (name, maxBytes) => {
    let data;
    try {
      data = await read(name, maxBytes);
    } catch (e) {
      if (e instanceof ArtifactError) fail(e.message);
      fail(`${name} cannot be read (${String(e?.message ?? e).slice(0, 200)})`);
    }
    if (data === null) fail(`${name} is missing`);
    return data;
  };

  const text = await get('manifest.json', MAX_MANIFEST_BYTES);
  if (text.length > MAX_MANIFEST_BYTES) fail(`manifest.json: is larger than the ${MAX_MANIFEST_BYTES}-byte limit`);
  let manifest;
  try {
    // ignoreBOM keeps a byte order mark, which JSON.parse then refuses (as Python's json does)
    manifest = JSON.parse(new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(text));
  } catch (e) {
    fail(`manifest.json is not valid JSON (${String(e.message).slice(0, 200)})`);
  }
  if (manifest === null || typeof manifest !== 'object' || Array.isArray(manifest)) fail('manifest.json is not a JSON object');
  if (Object.hasOwn(manifest, 'format_version') && manifest.format === FORMAT && !FORMAT_VERSIONS.includes(manifest.format_version)) {
    fail(`manifest.json: format_version ${String(JSON.stringify(manifest.format_version)).slice(0, 40)} is not supported (this runtime reads versions ${FORMAT_VERSIONS.join(', ')})`);
  }
  try {
    validate(manifest, SCHEMA);
  } catch (e) {
    if (!(e instanceof SchemaError)) throw e;
    fail(`manifest.json: ${e.message}`);
  }

  const files = new Map();
  await Promise.all(Object.entries(manifest.files).map(async ([name, info]) => {
    const data = await get(name, info.bytes);
    if (data.length !== info.bytes) fail(`${name}: its size is not the ${info.bytes} bytes the manifest lists (truncated or replaced file?)`);
    if (await sha256Hex(data) !== info.sha256) fail(`${name}: its SHA-256 is not the one the manifest lists (damaged file?)`);
    files.set(name, data);
  }));

  checkManifest(manifest, fail);
  checkControl(manifest, fail);
  for (const [name, data] of files) { // WGSL sources: strict UTF-8 (a byte order mark is kept, and refused by WGSL)
    if (name === 'weights.safetensors' || /^module(_relaxed)?(_threads)?\.wasm$/.test(name)) continue;
    try {
      new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(data);
    } catch {
      fail(`${name} is not UTF-8 text`);
    }
  }
  const weights = checkWeights(manifest, files, fail);
  return { manifest, files, weights };
}

/** What the schema cannot say: unique names, indices in range, files listed, sizes that fit. */
/**
 * Signatures' 'batch' sections (format version 2, docs/artifact.md "Symbolic batch"): only in
 * version 2, and every input and output has the chunk's rows as axis 0 (with 'rows_input': every
 * input but that one, an int32 scalar, and 'maximum' <= 'chunk').
 */
function checkBatch(manifest, fail) {
  for (const [name, sig] of Object.entries(manifest.signatures)) {
    const b = sig.batch;
    if (b === undefined) continue;
    if (manifest.format_version < 2) fail(`manifest.json: signature '${name}' has a 'batch' section, which needs format_version 2`);
    const k = b.rows_input;
    if (k !== undefined) { // a train step over the first rows of a chunk ("Symbolic batch: train steps")
      if (k >= sig.inputs.length || sig.inputs[k].dtype !== 'int32' || sig.inputs[k].shape.length !== 0) {
        fail(`manifest.json: signature '${name}': batch 'rows_input' ${k} must be the index of an int32 input of shape [] (the row count)`);
      }
      if ((b.maximum ?? b.chunk + 1) > b.chunk) {
        fail(`manifest.json: signature '${name}': a batch with 'rows_input' needs a 'maximum' of at most its chunk ${b.chunk} (a train step's rows cannot be split into chunks)`);
      }
    }
    for (const spec of [...sig.inputs.filter((_, i) => i !== k), ...(k === undefined ? sig.outputs : [])]) {
      if (spec.shape.length === 0 || spec.shape[0] !== b.chunk) {
        fail(`manifest.json: signature '${name}': '${spec.name}' has shape [${spec.shape}], but its batch chunk is ${b.chunk} rows (axis 0 of every input and output)`);
      }
    }
  }
}

/**
 * Signatures' 'length' sections (docs/artifact.md "Symbolic length"): one axis (or -1) per input
 * and output, within its rank and holding the maximum; at least one input has one; with a 'batch'
 * section, none in axis 0 (the batch's: docs/artifact.md "Symbolic batch and length").
 */
function checkLength(manifest, fail) {
  for (const [name, sig] of Object.entries(manifest.signatures)) {
    const ln = sig.length;
    if (ln === undefined) continue;
    const what = `manifest.json: signature '${name}' length`;
    for (const key of ['inputs', 'outputs']) {
      if (ln[key].length !== sig[key].length) fail(`${what}: '${key}' has ${ln[key].length} entries for ${sig[key].length} ${key}`);
      ln[key].forEach((ax, k) => {
        const spec = sig[key][k];
        if (ax >= 0 && (ax >= spec.shape.length || spec.shape[ax] !== ln.maximum)) {
          fail(`${what}: '${spec.name}' has shape [${spec.shape}], whose axis ${ax} is not the maximum length ${ln.maximum}`);
        }
        if (ax === 0 && sig.batch !== undefined) {
          fail(`${what}: '${spec.name}' has the length in axis 0, which its 'batch' section makes the batch (with a symbolic batch the length is past axis 0)`);
        }
      });
    }
    if (ln.inputs.every((ax) => ax < 0)) fail(`${what}: no input has the length`);
  }
}

function checkManifest(manifest, fail) {
  checkBatch(manifest, fail);
  checkLength(manifest, fail);
  const { variables, signatures } = manifest;
  const sized = (spec, what) => {
    if (storageBytes(spec) > MAX_FILE_BYTES) fail(`manifest.json: ${what} '${spec.name}': shape [${spec.shape}] needs more than 4 GiB`);
  };
  const names = new Set();
  variables.forEach((v, i) => {
    sized(v, `variables[${i}]`);
    if (names.has(v.name)) fail(`manifest.json: variable '${v.name}' is listed twice`);
    names.add(v.name);
  });
  checkStorage(variables, fail);
  const listed = (file, what) => {
    if (!Object.hasOwn(manifest.files, file)) fail(`manifest.json: ${what} names ${JSON.stringify(file)}, which "files" does not list`);
  };
  for (const [name, sig] of Object.entries(signatures)) {
    const what = `signature '${name}'`;
    for (const key of ['inputs', 'outputs']) {
      const seen = new Set();
      sig[key].forEach((s, i) => {
        sized(s, `${what} ${key}[${i}]`);
        if (seen.has(s.name)) fail(`manifest.json: ${what}: two ${key} are named '${s.name}'`);
        seen.add(s.name);
      });
    }
    for (const key of ['reads', 'writes']) {
      if (!(sig[key] ?? []).every((i) => i < variables.length)) {
        fail(`manifest.json: ${what}: "${key}" must be indices into "variables" (0..${variables.length - 1}), got ${JSON.stringify(sig[key]).slice(0, 80)}`);
      }
    }
    if (sig.wasm !== undefined) listed('module.wasm', `${what} wasm`);
    (sig.webgpu?.kernels ?? []).forEach((k, i) => listed(k.wgsl, `${what} webgpu.kernels[${i}]`));
  }
  if (Object.hasOwn(manifest.files, 'module_relaxed.wasm') && !Object.values(signatures).some((sig) => sig.wasm !== undefined)) {
    fail('manifest.json: "files" lists module_relaxed.wasm, but no signature has a "wasm" section');
  }
}

/** Parse weights.safetensors; check every variable is there with its dtype and shape. */
function checkWeights(manifest, files, fail) {
  let tensors;
  try {
    ({ tensors } = parseSafetensors(files.get('weights.safetensors'), 'weights.safetensors'));
  } catch (e) {
    fail(e.message);
  }
  for (const v of manifest.variables) {
    const t = tensors.get(v.name);
    if (!t) fail(`weights.safetensors: variable '${v.name}' is missing`);
    const [dtype, shape] = storedAs(v);
    if (t.dtype !== dtype || t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      fail(`weights.safetensors: variable '${v.name}' is ${t.dtype} [${t.shape}], the manifest lists ${dtype} [${shape}]${v.storage ? ' (its storage)' : ''}`);
    }
  }
  for (const int8 of [false, true]) {    // float16 first: an int8 variable's scales may be float16
    for (const v of manifest.variables) {
      if (v.storage && (v.storage.dtype === 'int8') === int8) tensors.set(v.name, unpacked(v, tensors, fail));
    }
  }
  return tensors;
}

/** The dtype and shape weights.safetensors holds variable `v` in (its `storage`, if any). */
function storedAs(v) {
  const st = v.storage;
  if (st === undefined) return [v.dtype, v.shape];
  return [st.dtype, st.dtype === 'int8' ? st.shape : v.shape];
}

/** IEEE binary16 bits -> the number (exact). */
function halfToNumber(h) {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return sign * f * 2 ** -24;
  if (e === 31) return f ? NaN : sign * Infinity;
  return sign * (1024 + f) * 2 ** (e - 25);
}

/**
 * A compactly stored variable as the variable the kernels read (docs/artifact.md,
 * "Compact weights"): float16 widened to float32 (exact); int8 bytes packed four
 * to an int32 word (zero-padded), after checking its scales are finite and positive.
 */
function unpacked(v, tensors, fail) {
  const t = tensors.get(v.name);
  if (v.storage.dtype === 'float16') {
    const src = new DataView(t.bytes.buffer, t.bytes.byteOffset, t.bytes.byteLength);
    const out = new Float32Array(t.bytes.length / 2);
    for (let i = 0; i < out.length; i++) out[i] = halfToNumber(src.getUint16(2 * i, true));
    return { dtype: 'float32', shape: v.shape, bytes: littleEndianBytes(out) };
  }
  const s = tensors.get(v.storage.scales).bytes;
  const view = new DataView(s.buffer, s.byteOffset, s.byteLength);
  for (let i = 0; i < s.length; i += 4) {
    const x = view.getFloat32(i, true);
    if (!(Number.isFinite(x) && x > 0)) {
      fail(`weights.safetensors: the scales of int8 variable '${v.name}' ('${v.storage.scales}') must be finite and positive`);
    }
  }
  const bytes = new Uint8Array(4 * v.shape[0]);
  bytes.set(t.bytes);
  return { dtype: 'int32', shape: v.shape, bytes };
}

function littleEndianBytes(f32) {
  const out = new Uint8Array(f32.length * 4);
  const view = new DataView(out.buffer);
  f32.forEach((x, i) => view.setFloat32(4 * i, x, true));
  return out;
}

/** The storage rules the schema cannot state (docs/artifact.md, "Compact weights"). */
function checkStorage(variables, fail) {
  const byName = new Map(variables.map((v) => [v.name, v]));
  for (const v of variables) {
    const st = v.storage;
    if (st === undefined) continue;
    const what = `manifest.json: variable '${v.name}': storage`;
    if (st.dtype === 'float16') {
      if (v.dtype !== 'float32' || st.shape !== undefined || st.scales !== undefined) {
        fail(`${what} float16 needs a float32 variable and takes no shape or scales`);
      }
      continue;
    }
    if (st.shape === undefined || st.scales === undefined) fail(`${what} int8 needs its logical shape and the name of its scales variable`);
    const n = sizeOf(st.shape);
    const words = Math.ceil(n / 4);
    if (v.dtype !== 'int32' || v.shape.length !== 1 || v.shape[0] !== words || st.shape.length < 2 || n > MAX_FILE_BYTES) {
      fail(`${what} int8 of shape [${st.shape}] needs a rank >= 2 shape and an int32 variable of shape [${words}] (its bytes four to a word), got ${v.dtype} [${v.shape}]`);
    }
    const sv = byName.get(st.scales);
    if (sv === undefined || sv === v || sv.dtype !== 'float32' || sv.shape.length !== 1 ||
        (sv.storage !== undefined && sv.storage.dtype !== 'float16')) {
      fail(`${what} int8: scales '${st.scales}' must name another float32 variable of rank 1 (stored as float32 or float16)`);
    }
    const c = sv.shape[0];
    if (!st.shape.slice(1).some((_, j) => sizeOf(st.shape.slice(j + 1)) === c)) {
      fail(`${what} int8: ${c} scales for shape [${st.shape}]; there must be one per output channel (the product of some trailing axes)`);
    }
  }
}

/** Byte size of `spec` ({dtype, shape}) in backend storage: 4 bytes per element for every dtype. */
export function storageBytes(spec) {
  return 4 * sizeOf(spec.shape);
}
