// The JS schema checker (js/schema.js) gives the same verdict and message as
// Python's (python/schema.py) on thousands of damaged manifests, and
// js/artifact_schema.js is docs/artifact.schema.json.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';

import SCHEMA from '../artifact_schema.js';
import { SchemaError, validate } from '../schema.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

test('js/artifact_schema.js is docs/artifact.schema.json', () => {
  assert.deepEqual(SCHEMA, JSON.parse(readFileSync(join(root, 'docs', 'artifact.schema.json'), 'utf8')));
});

test('same verdicts and messages as the Python checker', () => {
  const out = execFileSync('python3', [join(root, 'tests', 'python', 'schema_cases.py')], { maxBuffer: 1 << 30 });
  const cases = JSON.parse(out);
  assert.ok(cases.length > 2000);
  let differ = 0;
  for (const [doc, expected] of cases) {
    let got = null;
    try {
      validate(doc, SCHEMA);
    } catch (e) {
      assert.ok(e instanceof SchemaError, e.stack);
      got = e.message;
    }
    if (got !== expected) {
      differ++;
      assert.equal(got === null, expected === null, `${JSON.stringify(doc).slice(0, 300)}\nJS: ${got}\nPython: ${expected}`);
    }
  }
  // Messages may differ only where JavaScript orders integer-like object keys first (none in these cases).
  assert.equal(differ, 0);
});

test('prototype keys are data, not members', () => {
  const s = { type: 'object', properties: { a: { type: 'integer' } }, additionalProperties: false };
  for (const key of ['__proto__', 'constructor', 'toString', 'hasOwnProperty']) {
    assert.throws(() => validate(JSON.parse(`{"${key}": 1}`), s), /unknown entry/);
  }
  assert.throws(() => validate('constructor', { enum: ['float32', 'int32', 'bool'] }), /must be one of/);
  assert.throws(() => validate({}, { required: ['toString'] }), /"toString" is missing/);
});
