// Read an artifact (docs/artifact.md, format version 1) and check it before
// anything is created: manifest JSON, format and version, every listed file's
// presence, size and SHA-256, the manifest's structure, and the weights.

import { parseSafetensors } from './safetensors.js';
import { ARRAY_TYPES, sizeOf } from './tensor.js';

export const FORMAT = 'webtensor-artifact';
export const FORMAT_VERSION = 1;

/** A reader for an artifact directory at a URL (browser entry): name -> Uint8Array, or null if missing. */
export function urlReader(url) {
  const base = new URL(String(url).replace(/\/*$/, '/'), globalThis.location?.href);
  return async (name) => {
    const response = await fetch(new URL(name, base));
    if (response.status === 404 || response.status === 410) return null;
    if (!response.ok) throw new Error(`${name}: HTTP ${response.status} ${response.statusText} from ${response.url}`);
    return new Uint8Array(await response.arrayBuffer());
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
    throw new Error(`${name}: expected a Uint8Array or ArrayBuffer, got ${Object.prototype.toString.call(data)}`);
  };
}

async function sha256Hex(bytes) {
  if (!globalThis.crypto?.subtle) throw new Error('checking SHA-256 needs crypto.subtle (WebCrypto; in browsers a secure context)');
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
}

const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
const isIndex = (v, n) => Number.isInteger(v) && v >= 0 && v < n;
const isShape = (s) => Array.isArray(s) && s.every((d) => Number.isInteger(d) && d >= 0);

/**
 * Read and check an artifact. `read(name)` resolves to the file's bytes or
 * null when it is missing; `where` names the artifact in errors.
 * Resolves to `{manifest, files: Map name -> Uint8Array, weights: Map name ->
 * {dtype, shape, bytes}}`. Throws an Error `webtensor: artifact <where>:
 * <file or variable>: <what is wrong>` for any damage.
 */
export async function readArtifact(read, where) {
  const fail = (msg) => { throw new Error(`webtensor: artifact ${where}: ${msg}`); };
  const get = async (name) => {
    let data;
    try {
      data = await read(name);
    } catch (e) {
      fail(`${name}: cannot be read (${e.message})`);
    }
    if (data === null) fail(`${name} is missing`);
    return data;
  };

  let manifest;
  try {
    manifest = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(await get('manifest.json')));
  } catch (e) {
    if (e.message.startsWith('webtensor:')) throw e;
    fail(`manifest.json is not valid JSON (${e.message})`);
  }
  if (!isObject(manifest)) fail('manifest.json is not a JSON object');
  if (manifest.format !== FORMAT) fail(`manifest.json: format is ${JSON.stringify(manifest.format)}, expected "${FORMAT}"`);
  const major = Number.parseInt(String(manifest.format_version), 10);
  if (major !== FORMAT_VERSION) {
    fail(`manifest.json: format_version ${JSON.stringify(manifest.format_version)} is not supported (this runtime reads version ${FORMAT_VERSION})`);
  }
  if (!isObject(manifest.files)) fail('manifest.json: "files" must be an object {name: {bytes, sha256}}');

  const files = new Map();
  await Promise.all(Object.entries(manifest.files).map(async ([name, info]) => {
    if (!isObject(info) || !Number.isInteger(info.bytes) || typeof info.sha256 !== 'string') {
      fail(`manifest.json: files["${name}"] must be {bytes: integer, sha256: hex string}`);
    }
    const data = await get(name);
    if (data.length !== info.bytes) fail(`${name}: size is ${data.length} bytes, the manifest lists ${info.bytes} (truncated or replaced file?)`);
    const hash = await sha256Hex(data);
    if (hash !== info.sha256.toLowerCase()) fail(`${name}: SHA-256 is ${hash}, the manifest lists ${info.sha256} (damaged file?)`);
    files.set(name, data);
  }));

  checkManifest(manifest, fail);
  const weights = checkWeights(manifest, files, fail);
  return { manifest, files, weights };
}

function checkTensorSpec(spec, what, fail) {
  if (!isObject(spec) || typeof spec.name !== 'string') fail(`manifest.json: ${what} must be {name, dtype, shape}`);
  if (!(spec.dtype in ARRAY_TYPES)) fail(`manifest.json: ${what} '${spec.name}': unsupported dtype ${JSON.stringify(spec.dtype)} (supported: ${Object.keys(ARRAY_TYPES).join(', ')})`);
  if (!isShape(spec.shape)) fail(`manifest.json: ${what} '${spec.name}': shape must be non-negative integers, got ${JSON.stringify(spec.shape)}`);
}

/** Structure checks that every backend relies on (backend sections are checked by the backends). */
function checkManifest(manifest, fail) {
  const { variables, signatures } = manifest;
  if (!Array.isArray(variables)) fail('manifest.json: "variables" must be an array');
  const names = new Set();
  variables.forEach((v, i) => {
    checkTensorSpec(v, `variables[${i}]`, fail);
    if (names.has(v.name)) fail(`manifest.json: variable '${v.name}' is listed twice`);
    names.add(v.name);
  });
  if (!isObject(signatures) || Object.keys(signatures).length === 0) fail('manifest.json: "signatures" must be a non-empty object');
  const listed = (file, what) => {
    if (!(file in manifest.files)) fail(`manifest.json: ${what} names ${JSON.stringify(file)}, which "files" does not list`);
  };
  for (const [name, sig] of Object.entries(signatures)) {
    const what = `signature '${name}'`;
    if (!isObject(sig)) fail(`manifest.json: ${what} must be an object`);
    for (const key of ['inputs', 'outputs']) {
      if (!Array.isArray(sig[key])) fail(`manifest.json: ${what}: "${key}" must be an array`);
      sig[key].forEach((s, i) => {
        checkTensorSpec(s, `${what} ${key}[${i}]`, fail);
        if (sig[key].findIndex((o) => o.name === s.name) !== i) fail(`manifest.json: ${what}: two ${key} are named '${s.name}'`);
      });
    }
    for (const key of ['reads', 'writes']) {
      const list = sig[key] ?? [];
      if (!Array.isArray(list) || !list.every((i) => isIndex(i, variables.length))) {
        fail(`manifest.json: ${what}: "${key}" must be indices into "variables" (0..${variables.length - 1}), got ${JSON.stringify(sig[key])}`);
      }
    }
    if (sig.wasm !== undefined) listed('module.wasm', `${what} wasm`);
    if (sig.webgpu !== undefined) {
      if (!isObject(sig.webgpu) || !Array.isArray(sig.webgpu.kernels)) fail(`manifest.json: ${what}: webgpu.kernels must be an array`);
      sig.webgpu.kernels.forEach((k, i) => {
        if (!isObject(k) || typeof k.wgsl !== 'string') fail(`manifest.json: ${what}: webgpu.kernels[${i}].wgsl must be a file name`);
        listed(k.wgsl, `${what} webgpu.kernels[${i}]`);
      });
    }
  }
  listed('weights.safetensors', 'the artifact');
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
    if (t.dtype !== v.dtype || t.shape.length !== v.shape.length || t.shape.some((d, i) => d !== v.shape[i])) {
      fail(`weights.safetensors: variable '${v.name}' is ${t.dtype} [${t.shape}], the manifest lists ${v.dtype} [${v.shape}]`);
    }
  }
  return tensors;
}

/** Byte size of `spec` ({dtype, shape}) in backend storage: 4 bytes per element for every dtype. */
export function storageBytes(spec) {
  return 4 * sizeOf(spec.shape);
}
