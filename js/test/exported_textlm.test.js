// Issue 15's real work in Node: the text job's character LSTM (webtensor.textlm), exported once by
// Python (tests/export_fixtures_textlm.py) with three signatures sharing its weights: predict runs on
// 0-padded rows of several lengths (the LSTM's time loop a loop of the artifact's control flow, the
// mask skipping padded steps), generate (greedy) and sample (temperature, the graph's random stream)
// each run one while_loop that stops at the end marker. Every result equals Python-wasmtime running
// the same artifact bit for bit (Python checks there that padded predictions equal the unpadded
// model's and that generate equals the traced while_loop).

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import * as webtensor from '../node.js';
import { pythonFixture } from './helpers.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const SCRIPT = join(ROOT, 'tests', 'export_fixtures_textlm.py');

let out, expected, model, vocab;
before(async () => {
  ({ out, expected } = pythonFixture(SCRIPT, 'webtensor-exported-textlm-'));
  model = await webtensor.load(join(out, 'lm'), { backend: 'wasm' });
  vocab = JSON.parse(readFileSync(join(out, 'lm', 'vocabulary.json'), 'utf8'));
});
after(() => {
  model?.dispose();
  rmSync(out, { recursive: true, force: true });
});

const f32 = (values) => Array.from(Float32Array.from(values));
const decode = (ids) => {
  const end = ids.findIndex((i) => i <= vocab.boundary);
  return (end < 0 ? ids : ids.slice(0, end)).map((i) => vocab.chars[i - 2]).join('');
};

describe('the text job\'s language model', () => {
  test('predict on rows of several lengths equals Python bit for bit', async () => {
    const [, steps] = model.signatures.predict.inputs[0].shape;
    const vocabSize = vocab.chars.length + 2;
    for (const [b, lengths] of expected.lengths.entries()) {
      const ids = webtensor.tensor(Int32Array.from(expected.ids[b]), [lengths.length, steps]);
      const logits = (await model.predict(ids)).dataSync();
      lengths.forEach((n, r) => {
        const row = Array.from(logits.subarray(r * steps * vocabSize, (r * steps + n) * vocabSize));
        assert.deepEqual(row, f32(expected.predict[b][r]), `batch ${b}, row ${r} (${n} steps)`);
      });
    }
  });

  test('predict takes any length up to the maximum: the same ids cut shorter give the same logits', async () => {
    const { maximum } = model.signatures.predict.length;
    const [, steps] = model.signatures.predict.inputs[0].shape;
    assert.equal(maximum, steps);
    const vocabSize = vocab.chars.length + 2;
    const n = expected.short;
    const rows = expected.lengths[1];
    const all = Int32Array.from(expected.ids[1]);
    const ids = new Int32Array(rows.length * n);
    rows.forEach((_, r) => ids.set(all.subarray(r * steps, r * steps + n), r * n));
    const out = await model.predict(webtensor.tensor(ids, [rows.length, n], 'int32'));
    assert.deepEqual(out.shape, [rows.length, n, vocabSize]);
    const logits = out.dataSync();
    rows.forEach((len, r) => {
      const row = Array.from(logits.subarray(r * n * vocabSize, (r * n + len) * vocabSize));
      assert.deepEqual(row, f32(expected.predict[1][r]), `row ${r} (${len} steps) at length ${n}`);
    });
    await assert.rejects(model.predict(webtensor.tensor(new Int32Array(rows.length * (steps + 1)), [rows.length, steps + 1], 'int32')),
      RangeError);
  });

  test('generate: greedy decoding in one while_loop equals Python', async () => {
    for (const [k, prompt] of expected.prompts.entries()) {
      const { output_0 } = await model.run('generate', [webtensor.tensor(Int32Array.from(prompt), [prompt.length])]);
      const ids = Array.from(output_0.dataSync());
      assert.deepEqual(ids, expected.generate[k]);
      assert.equal(decode(ids), expected.texts[k]);
    }
    assert.ok(expected.texts.some((t) => t.trim().length > 3), `the model says nothing: ${JSON.stringify(expected.texts)}`);
  });

  test('sample: temperature sampling draws Python\'s characters, new ones on each call', async () => {
    const prompt = webtensor.tensor(Int32Array.from(expected.prompts[0]), [expected.prompts[0].length]);
    const temperature = webtensor.tensor(Float32Array.of(expected.temperature), []);
    const fresh = await webtensor.load(join(out, 'lm'), { backend: 'wasm' });    // the random state as exported
    try {
      for (const want of expected.sample) {
        const { output_0 } = await fresh.run('sample', [prompt, temperature]);
        assert.deepEqual(Array.from(output_0.dataSync()), want);
      }
    } finally {
      fresh.dispose();
    }
  });
});

test("the README's text-job snippet runs as written beside such an artifact", () => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const start = readme.indexOf('## The text job');
  const section = readme.slice(start, readme.indexOf('\n## ', start + 1));
  const [js, ...more] = [...section.matchAll(/```js\n([\s\S]*?)```/g)].map((m) => m[1]);
  assert.ok(js && more.length === 0, 'one JS snippet in the README\'s text-job section');
  mkdirSync(join(out, 'node_modules'));
  symlinkSync(ROOT, join(out, 'node_modules', 'webtensor'), 'dir');       // what `npm install webtensor` gives
  writeFileSync(join(out, 'generate.mjs'), js);
  const printed = execFileSync(process.execPath, ['generate.mjs'], { cwd: out, timeout: 60_000 }).toString();
  const [greedy, sampled] = printed.replace(/\n$/, '').split(' | ');
  assert.equal(greedy, `You ${expected.texts[2]}`);                 // the fixture's third prompt is the snippet's
  assert.ok(sampled.startsWith('You '), printed);
});
