// The README's JavaScript snippet runs as written: Python's tour and export snippet (from the README)
// write the digits_mlp artifact into a fresh folder, then the ```js block runs there as an ES module
// in Node, importing 'webtensor' as an installed package (node_modules/webtensor -> this repository).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const readme = readFileSync(join(root, 'README.md'), 'utf8');

/** The fenced blocks of one language in the README section that starts with `heading`. */
function blocks(heading, lang) {
  const start = readme.indexOf(heading);
  assert.notEqual(start, -1, `README has no section ${heading}`);
  const end = readme.indexOf('\n## ', start + 1);
  const section = readme.slice(start, end === -1 ? undefined : end);
  return [...section.matchAll(new RegExp('```' + lang + '\\n([\\s\\S]*?)```', 'g'))].map((m) => m[1]);
}

/** Run a program in `cwd`; its stdout, or an error with the end of its stderr. */
function run(file, args, cwd, timeout) {
  try {
    return execFileSync(file, args, { cwd, timeout, stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 1 << 26 }).toString();
  } catch (e) {
    throw new Error(`${file} ${args.join(' ')} failed (${e.status ?? e.signal}):\n${String(e.stderr).slice(-3000)}`);
  }
}

test("the README's JS snippet runs as written beside the artifact the README's Python exports", (t) => {
  const [js, ...more] = blocks('## Export', 'js');
  assert.equal(more.length, 0, 'one JS snippet');
  const dir = mkdtempSync(join(tmpdir(), 'webtensor-readme-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const python = [...blocks('## A short tour (Python)', 'python'), ...blocks('## Export', 'python')].join('\n');
  writeFileSync(join(dir, 'readme.py'), python);
  run('python3', ['readme.py'], dir, 300_000);

  mkdirSync(join(dir, 'node_modules'));
  symlinkSync(root, join(dir, 'node_modules', 'webtensor'), 'dir');          // what `npm install webtensor` gives
  // The snippet as written, then a line that reports what it computed.
  writeFileSync(join(dir, 'predict.mjs'), `${js}\nconsole.log('RESULT ' + JSON.stringify({ shape: logits.shape, `
    + 'logits: Array.from(logits.dataSync()), loss: loss.dataSync()[0], lossShape: loss.shape }));\n');
  const out = run(process.execPath, ['predict.mjs'], dir, 120_000);
  const r = JSON.parse(out.split('\n').find((l) => l.startsWith('RESULT ')).slice(7));
  assert.deepEqual(r.shape, [32, 10]);
  assert.ok(r.logits.every(Number.isFinite));
  assert.deepEqual(r.lossShape, []);
  assert.ok(Number.isFinite(r.loss) && r.loss > 0, `loss ${r.loss}`);
});

test("the README's npm package size is what `npm pack --dry-run` reports (within 15 %)", () => {
  const m = readme.match(/`npm pack --dry-run`[^\n]*?: ([\d.]+) kB packed, ([\d.]+) kB unpacked/);
  assert.ok(m, 'the README quotes `npm pack --dry-run`: N kB packed, M kB unpacked');
  const [info] = JSON.parse(execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'],
    { cwd: root, stdio: ['ignore', 'pipe', 'ignore'] }).toString());
  for (const [quoted, bytes, what] of [[Number(m[1]), info.size, 'packed'], [Number(m[2]), info.unpackedSize, 'unpacked']]) {
    const kB = bytes / 1000;
    assert.ok(Math.abs(kB - quoted) <= 0.15 * quoted, `${what}: npm pack says ${kB.toFixed(1)} kB, the README ${quoted} kB`);
  }
});
