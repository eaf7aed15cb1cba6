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
  let text;
  try {
    text = JSON.stringify(v) ?? String(v);
  } catch { // nested too deeply to print (JSON.parse reads what JSON.stringify cannot write)
    text = Array.isArray(v) ? '[...]' : '{...}';
  }
  return text.length <= 40 ? text : `${text.slice(0, 37)}...`;
}

function regex(pattern) {
  if (!patterns.has(pattern)) patterns.set(pattern, new RegExp(pattern, 'u'));
  return patterns.get(pattern);
}

const plans = new WeakMap(); // schema node -> its keywords, read and checked once

// A mismatch inside `check`: each enclosing array or object adds its path segment (built only on failure).
class Mismatch extends Error {
  constructor(problem) {
    super(problem);
    this.segments = [];
  }
}
const keyOf = (key) => (PLAIN.test(key) ? key : show(key));
const get = (o, k) => (own(o, k) ? o[k] : undefined);

function planOf(schema, root) {
  let plan = plans.get(schema);
  if (plan) return plan;
  for (const k of Object.keys(schema)) if (!KEYWORDS.has(k)) throw new Error(`schema keyword ${k} is not supported`);
  const ref = get(schema, '$ref');
  if (ref !== undefined && !ref.startsWith('#/$defs/')) throw new Error(`schema: unsupported $ref ${ref}`);
  const extra = get(schema, 'additionalProperties');
  plan = {
    ref: ref === undefined ? null : root.$defs[ref.slice('#/$defs/'.length)],
    type: get(schema, 'type'), hasConst: own(schema, 'const'), const: schema.const, enum: get(schema, 'enum'),
    minimum: get(schema, 'minimum'), maximum: get(schema, 'maximum'), maxLength: get(schema, 'maxLength'),
    pattern: get(schema, 'pattern'), regex: own(schema, 'pattern') ? regex(schema.pattern) : null,
    minItems: get(schema, 'minItems'), maxItems: get(schema, 'maxItems'), items: get(schema, 'items'),
    minProperties: get(schema, 'minProperties'), maxProperties: get(schema, 'maxProperties'),
    required: get(schema, 'required') ?? [], props: new Map(Object.entries(get(schema, 'properties') ?? {})),
    extra: extra !== null && typeof extra === 'object' ? extra : extra === false ? false : null,
    names: get(schema, 'propertyNames'),
  };
  plans.set(schema, plan);
  return plan;
}

function check(value, schema, root) {
  const p = planOf(schema, root);
  if (p.ref) check(value, p.ref, root);
  const kind = typeOf(value);
  const fail = (problem) => { throw new Mismatch(problem); };
  if (p.type !== undefined && !(kind === p.type || (p.type === 'number' && kind === 'integer'))) {
    fail(`must be ${'aeiou'.includes(p.type[0]) ? 'an' : 'a'} ${p.type}, got ${show(value)}`);
  }
  if (p.hasConst && !same(value, p.const)) fail(`must be ${show(p.const)}, got ${show(value)}`);
  if (p.enum !== undefined && !p.enum.some((e) => same(value, e))) fail(`must be one of ${p.enum.map(show).join(', ')}, got ${show(value)}`);
  if (kind === 'integer' || kind === 'number') {
    if (p.minimum !== undefined && value < p.minimum) fail(`must be at least ${p.minimum}, got ${show(value)}`);
    if (p.maximum !== undefined && value > p.maximum) fail(`must be at most ${p.maximum}, got ${show(value)}`);
  } else if (kind === 'string') {
    // code points, as JSON Schema (and Python's len) count them
    if (p.maxLength !== undefined && value.length > p.maxLength && [...value].length > p.maxLength) fail(`must be at most ${p.maxLength} characters long`);
    if (p.regex && !p.regex.test(value)) fail(`${show(value)} does not match ${p.pattern}`);
  } else if (kind === 'array') {
    if (p.minItems !== undefined && value.length < p.minItems) fail(`must have at least ${p.minItems} items, got ${value.length}`);
    if (p.maxItems !== undefined && value.length > p.maxItems) fail(`must have at most ${p.maxItems} items, got ${value.length}`);
    if (p.items !== undefined) {
      for (let i = 0; i < value.length; i++) {
        try {
          check(value[i], p.items, root);
        } catch (e) {
          if (e instanceof Mismatch) e.segments.push(`[${i}]`);
          throw e;
        }
      }
    }
  } else if (kind === 'object') {
    const keys = Object.keys(value);
    if (p.minProperties !== undefined && keys.length < p.minProperties) fail(`must have at least ${p.minProperties} entries, got ${keys.length}`);
    if (p.maxProperties !== undefined && keys.length > p.maxProperties) fail(`must have at most ${p.maxProperties} entries, got ${keys.length}`);
    for (const key of p.required) if (!own(value, key)) fail(`${JSON.stringify(key)} is missing`);
    for (const key of keys) {
      if (p.names !== undefined) {
        try {
          check(key, p.names, root);
        } catch (e) {
          if (e instanceof Mismatch) e.segments.push(' (name)', `.${keyOf(key)}`);
          throw e;
        }
      }
      let sub = p.props.get(key) ?? null;
      if (sub === null) {
        if (p.extra === false) fail(`unknown entry ${show(key)}`);
        sub = p.extra;
      }
      if (sub !== null) {
        try {
          check(value[key], sub, root);
        } catch (e) {
          if (e instanceof Mismatch) e.segments.push(`.${keyOf(key)}`);
          throw e;
        }
      }
    }
  }
}

/**
 * Check `value` against `schema`. Throws a SchemaError at the first mismatch
 * (depth-first, object keys in order), and an Error for a schema keyword this
 * checker does not implement.
 */
export function validate(value, schema) {
  try {
    check(value, schema, schema);
  } catch (e) {
    if (!(e instanceof Mismatch)) throw e;
    throw new SchemaError(e.segments.reverse().join('').replace(/^\./, ''), e.message);
  }
}
