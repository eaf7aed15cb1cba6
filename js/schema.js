// A JSON Schema checker for the keywords docs/artifact.schema.json uses; the
// same checker, with the same messages, as python/schema.py (read its
// docstring for the keyword list). JSON Schema 2020-12:
// https://json-schema.org/draft/2020-12/json-schema-validation
// Every lookup is an own-property lookup: a manifest key such as "__proto__"
// or "constructor" is data, never a prototype member.

const KEYWORDS = new Set(['$schema', '$id', '$defs', 'title', 'description', 'type', 'const', 'enum', 'properties',
  'required', 'additionalProperties', 'propertyNames', 'minProperties', 'maxProperties', 'items',
  'minItems', 'maxItems', 'minimum', 'maximum', 'maxLength', 'pattern', '$ref']);
const PLAIN = /^[A-Za-z0-9_/-][A-Za-z0-9_./-]{0,63}$/; // keys shown as they are in paths
const patterns = new Map();
const own = (o, k) => Object.hasOwn(o, k);

/** A JSON value that does not match the schema; `path` is where (`signatures.predict.inputs[0]`). */
export class SchemaError extends Error {
  constructor(path, problem) {
    super(`${path || '(the document)'}: ${problem}`);
    this.name = 'SchemaError';
    this.path = path;
    this.problem = problem;
  }
}

function typeOf(v) {
  if (v === null) return 'null';
  if (typeof v === 'boolean') return 'boolean';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  if (typeof v === 'string') return 'string';
  if (Array.isArray(v)) return 'array';
  return typeof v;
}

// const/enum in the schema are scalars: equal type and value
const same = (a, b) => typeOf(a) === typeOf(b) && a === b;

function show(v) {
  const text = JSON.stringify(v) ?? String(v);
  return text.length <= 40 ? text : `${text.slice(0, 37)}...`;
}

function regex(pattern) {
  if (!patterns.has(pattern)) patterns.set(pattern, new RegExp(pattern, 'u'));
  return patterns.get(pattern);
}

/**
 * Check `value` against `schema` (`root` resolves `$ref`). Throws a
 * SchemaError at the first mismatch (depth-first, object keys in order).
 */
export function validate(value, schema, root = schema, path = '') {
  for (const k of Object.keys(schema)) if (!KEYWORDS.has(k)) throw new Error(`schema keyword ${k} is not supported`);
  if (own(schema, '$ref')) {
    const ref = schema.$ref;
    if (!ref.startsWith('#/$defs/')) throw new Error(`schema: unsupported $ref ${ref}`);
    validate(value, root.$defs[ref.slice('#/$defs/'.length)], root, path);
  }
  const kind = typeOf(value);
  const fail = (problem) => { throw new SchemaError(path, problem); };
  if (own(schema, 'type')) {
    const want = schema.type;
    if (!(kind === want || (want === 'number' && kind === 'integer'))) {
      fail(`must be ${'aeiou'.includes(want[0]) ? 'an' : 'a'} ${want}, got ${show(value)}`);
    }
  }
  if (own(schema, 'const') && !same(value, schema.const)) fail(`must be ${show(schema.const)}, got ${show(value)}`);
  if (own(schema, 'enum') && !schema.enum.some((e) => same(value, e))) {
    fail(`must be one of ${schema.enum.map(show).join(', ')}, got ${show(value)}`);
  }
  if (kind === 'integer' || kind === 'number') {
    if (own(schema, 'minimum') && value < schema.minimum) fail(`must be at least ${schema.minimum}, got ${show(value)}`);
    if (own(schema, 'maximum') && value > schema.maximum) fail(`must be at most ${schema.maximum}, got ${show(value)}`);
  } else if (kind === 'string') {
    if (own(schema, 'maxLength') && [...value].length > schema.maxLength) fail(`must be at most ${schema.maxLength} characters long`);
    if (own(schema, 'pattern') && !regex(schema.pattern).test(value)) fail(`${show(value)} does not match ${schema.pattern}`);
  } else if (kind === 'array') {
    if (own(schema, 'minItems') && value.length < schema.minItems) fail(`must have at least ${schema.minItems} items, got ${value.length}`);
    if (own(schema, 'maxItems') && value.length > schema.maxItems) fail(`must have at most ${schema.maxItems} items, got ${value.length}`);
    if (own(schema, 'items')) value.forEach((item, i) => validate(item, schema.items, root, `${path}[${i}]`));
  } else if (kind === 'object') {
    const keys = Object.keys(value);
    if (own(schema, 'minProperties') && keys.length < schema.minProperties) fail(`must have at least ${schema.minProperties} entries, got ${keys.length}`);
    if (own(schema, 'maxProperties') && keys.length > schema.maxProperties) fail(`must have at most ${schema.maxProperties} entries, got ${keys.length}`);
    for (const key of schema.required ?? []) if (!own(value, key)) fail(`${JSON.stringify(key)} is missing`);
    const props = schema.properties ?? {};
    const extra = schema.additionalProperties;
    for (const key of keys) {
      const seg = PLAIN.test(key) ? key : show(key);
      const at = path ? `${path}.${seg}` : seg;
      if (own(schema, 'propertyNames')) validate(key, schema.propertyNames, root, `${at} (name)`);
      if (own(props, key)) validate(value[key], props[key], root, at);
      else if (extra === false) fail(`unknown entry ${show(key)}`);
      else if (extra !== null && typeof extra === 'object') validate(value[key], extra, root, at);
    }
  }
}
