// Read and write the safetensors format (https://github.com/huggingface/safetensors):
//   8 bytes  N, little-endian u64: length of the JSON header
//   N bytes  UTF-8 JSON {"__metadata__": {str: str}, name: {dtype, shape, data_offsets}, ...},
//            padded with spaces to a multiple of 8
//   rest     the tensors' raw little-endian C-order bytes, back to back
// Mirrors python/safetensors_io.py: the same checks on read, the same byte
// layout on write (tensors by decreasing alignment, then name).

/** safetensors dtype -> [webtensor dtype, bytes per element]; in the reference enum's order. */
const ST_DTYPES = {
  BOOL: ['bool', 1], U8: ['uint8', 1], I8: ['int8', 1], I16: ['int16', 2], U16: ['uint16', 2],
  F16: ['float16', 2], BF16: ['bfloat16', 2], I32: ['int32', 4], U32: ['uint32', 4],
  F32: ['float32', 4], F64: ['float64', 8], I64: ['int64', 8], U64: ['uint64', 8],
};
const ST_ORDER = Object.keys(ST_DTYPES);
const TO_ST = Object.fromEntries(Object.entries(ST_DTYPES).map(([st, [dt]]) => [dt, st]));
const MAX_HEADER = 100_000_000;

const isShape = (s) => Array.isArray(s) && s.every((d) => Number.isInteger(d) && d >= 0);
const count = (shape) => shape.reduce((a, b) => a * b, 1);

/**
 * The first key that a JSON object's text (already parsed, so well-formed)
 * repeats at its top level, or null. JSON.parse keeps the last of duplicates
 * silently; a header naming a tensor twice is refused instead (as Python's
 * reader does), so the two runtimes never read different tensors.
 */
function duplicateKey(text) {
  const seen = new Set();
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      if (depth === 1 && /^\s*:/.test(text.slice(j + 1, j + 64))) {
        const key = JSON.parse(text.slice(i, j + 1));
        if (seen.has(key)) return key;
        seen.add(key);
      }
      i = j;
    } else if (c === '{' || c === '[') depth++;
    else if (c === '}' || c === ']') depth--;
  }
  return null;
}

/**
 * Parse safetensors bytes (a Uint8Array). Returns `{tensors, metadata}`:
 * `tensors` is a Map name -> {dtype (webtensor name), shape, bytes (a
 * Uint8Array view into `bytes`)}. Throws an Error starting with `what` for a
 * damaged file (too short, header length/JSON/entries broken, offsets that
 * overlap, leave gaps or run past the end).
 */
export function parseSafetensors(bytes, what = 'safetensors') {
  const fail = (msg) => { throw new Error(`${what}: ${msg}`); };
  if (bytes.length < 8) fail(`${bytes.length} bytes is too short for the 8-byte header length`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = Number(view.getBigUint64(0, true));
  if (n > MAX_HEADER) fail(`header length ${n} is over the ${MAX_HEADER}-byte limit (damaged file?)`);
  if (8 + n > bytes.length) fail(`header length ${n} runs past the end of the data (${bytes.length} bytes; truncated file?)`);
  let header, text;
  try {
    // ignoreBOM keeps a byte order mark, which JSON.parse then refuses (as Python's json does)
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes.subarray(8, 8 + n));
    header = JSON.parse(text);
  } catch (e) {
    fail(`header is not valid UTF-8 JSON (${e.message})`);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) fail('header is not a JSON object');
  const twice = duplicateKey(text);
  if (twice !== null) fail(`duplicate key ${JSON.stringify(twice)} in safetensors header`);
  const metadata = header.__metadata__ ?? {};
  delete header.__metadata__;
  if (typeof metadata !== 'object' || Array.isArray(metadata) || !Object.values(metadata).every((v) => typeof v === 'string')) {
    fail("'__metadata__' must map strings to strings");
  }
  const entries = [];
  for (const [name, info] of Object.entries(header)) {
    const bad = (msg) => fail(`tensor '${name}': ${msg}`);
    if (info === null || typeof info !== 'object') bad('entry is not a JSON object');
    const { dtype, shape, data_offsets: off } = info;
    if (!(dtype in ST_DTYPES)) bad(`unknown dtype ${JSON.stringify(dtype)}`);
    if (!isShape(shape)) bad(`shape must be non-negative integers, got ${JSON.stringify(shape)}`);
    if (!Array.isArray(off) || off.length !== 2 || !off.every((o) => Number.isInteger(o) && o >= 0) || off[1] < off[0]) {
      bad(`data_offsets must be [begin, end] with 0 <= begin <= end, got ${JSON.stringify(off)}`);
    }
    const need = count(shape) * ST_DTYPES[dtype][1];
    if (off[1] - off[0] !== need) bad(`data_offsets [${off}] span ${off[1] - off[0]} bytes, but shape [${shape}] of ${dtype} needs ${need}`);
    entries.push({ name, dtype: ST_DTYPES[dtype][0], shape, begin: off[0], end: off[1] });
  }
  const start = 8 + n;
  const length = bytes.length - start;
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let pos = 0;
  for (const e of entries) {
    if (e.end > length) fail(`tensor '${e.name}': data_offsets [${e.begin}, ${e.end}] run past the end of the ${length}-byte data buffer (truncated file?)`);
    if (e.begin !== pos) fail(`tensor '${e.name}': data_offsets [${e.begin}, ${e.end}] ${e.begin < pos ? 'overlap the previous tensor' : 'leave a gap after byte ' + pos}`);
    pos = e.end;
  }
  if (pos !== length) fail(`tensors cover ${pos} bytes but the data buffer has ${length} (damaged file?)`);
  const tensors = new Map();
  for (const e of entries) {
    tensors.set(e.name, { dtype: e.dtype, shape: e.shape, bytes: bytes.subarray(start + e.begin, start + e.end) });
  }
  return { tensors, metadata };
}

/**
 * Serialize tensors to safetensors bytes (a Uint8Array), byte-identical to
 * python/safetensors_io.save. `tensors`: an object or Map name -> {dtype,
 * shape, bytes} (raw little-endian bytes; a typed array is taken as its bytes);
 * `metadata`: optional {str: str}. Throws an Error for an unknown dtype or a
 * size mismatch.
 */
export function writeSafetensors(tensors, metadata) {
  const entries = [];
  for (const [name, t] of tensors instanceof Map ? tensors : Object.entries(tensors)) {
    const st = TO_ST[t.dtype];
    if (!st) throw new Error(`safetensors: tensor '${name}': unknown dtype '${t.dtype}'`);
    const bytes = new Uint8Array(t.bytes.buffer, t.bytes.byteOffset, t.bytes.byteLength);
    const need = count(t.shape) * ST_DTYPES[st][1];
    if (bytes.length !== need) throw new Error(`safetensors: tensor '${name}': ${bytes.length} bytes, but shape [${t.shape}] of ${t.dtype} needs ${need}`);
    entries.push({ name, st, shape: t.shape, bytes });
  }
  // decreasing alignment, then name (code-unit order, as Python sorts str)
  entries.sort((a, b) => ST_ORDER.indexOf(b.st) - ST_ORDER.indexOf(a.st) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const header = {};
  if (metadata) header.__metadata__ = Object.fromEntries(Object.keys(metadata).sort().map((k) => [k, String(metadata[k])]));
  let offset = 0;
  for (const e of entries) {
    header[e.name] = { dtype: e.st, shape: e.shape, data_offsets: [offset, offset + e.bytes.length] };
    offset += e.bytes.length;
  }
  let json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + padded + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + padded);
  let pos = 8 + padded;
  for (const e of entries) {
    out.set(e.bytes, pos);
    pos += e.bytes.length;
  }
  return out;
}
