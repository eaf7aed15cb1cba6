// Loading: every kind of source, and a clear Error for every kind of damage.
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe, test } from 'node:test';

import * as browser from '../index.js';
import * as webtensor from '../node.js';
import { buildFixtures, readDir, resign } from './helpers.js';

let fx, files;
before(() => {
  fx = buildFixtures();
  files = readDir(fx.dir);
});
after(() => fx.cleanup());

const predictOK = async (model) => {
  const y = await model.predict(fx.x);
  assert.deepEqual(Array.from(y.dataSync()), fx.expected.predict.y);
  model.dispose();
};

describe('sources', () => {
  test('a directory path, a file: URL string and a URL object (Node entry)', async () => {
    await predictOK(await webtensor.load(fx.dir, { backend: 'wasm' }));
    await predictOK(await webtensor.load(pathToFileURL(fx.dir).href, { backend: 'wasm' }));
    await predictOK(await webtensor.load(pathToFileURL(fx.dir + '/'), { backend: 'wasm' }));
  });

  test('an object of bytes (both entries), ArrayBuffers and a Map too', async () => {
    await predictOK(await webtensor.load(files, { backend: 'wasm' }));
    await predictOK(await browser.load(files, { backend: 'wasm' }));
    const buffers = Object.fromEntries(Object.entries(files).map(([k, v]) => [k, v.slice().buffer]));
    await predictOK(await browser.load(buffers));
    await predictOK(await browser.load(new Map(Object.entries(files))));
  });

  test('an http URL (browser entry, fetch), with 404 for a missing file', async () => {
    const served = { ...files };
    const server = createServer(async (req, res) => {
      const name = decodeURIComponent(new URL(req.url, 'http://x').pathname).replace(/^\/model\//, '');
      if (!served[name]) { res.writeHead(404).end('not found'); return; }
      res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(served[name]);
    });
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${server.address().port}/model`;
    try {
      await predictOK(await browser.load(url));
      await predictOK(await webtensor.load(url + '/', { backend: 'wasm' }));
      delete served['kernels/classify_0.wgsl'];
      await assert.rejects(browser.load(url), new RegExp(`artifact '${url}': kernels/classify_0.wgsl is missing`));
    } finally {
      server.close();
    }
  });

  test('auto without a GPU picks wasm; webgpu without a GPU or adapter throws', async () => {
    const model = await webtensor.load(files);
    assert.equal(model.backend, 'wasm');
    assert.equal(model.adapterInfo, null);
    model.dispose();
    await assert.rejects(webtensor.load(files, { backend: 'webgpu' }), /backend 'webgpu' was requested, but WebGPU is not available \(no navigator.gpu and no `gpu` option/);
    const noAdapter = { requestAdapter: async () => null };
    await assert.rejects(webtensor.load(files, { backend: 'webgpu', gpu: noAdapter }), /no WebGPU adapter is available/);
    assert.equal((await webtensor.load(files, { gpu: noAdapter })).backend, 'wasm');
    await assert.rejects(webtensor.load(files, { backend: 'cuda' }), /backend must be 'auto', 'webgpu' or 'wasm', got "cuda"/);
    await assert.rejects(webtensor.load(42), /source must be a URL or path string or an object/);
  });
});

const enc = (s) => new TextEncoder().encode(s);
const manifestOf = (f) => JSON.parse(new TextDecoder().decode(f['manifest.json']));
const withManifest = (f, edit) => {
  const m = manifestOf(f);
  edit(m);
  return { ...f, 'manifest.json': enc(JSON.stringify(m)) };
};
const weightsWith = (edit) => {
  const { tensors, metadata } = webtensor.parseSafetensors(files['weights.safetensors']);
  const out = Object.fromEntries([...tensors].map(([k, t]) => [k, { ...t }]));
  edit(out);
  return resign({ ...files, 'weights.safetensors': webtensor.writeSafetensors(out, metadata) });
};

describe('damaged artifacts throw an Error naming the file or variable', () => {
  const cases = {
    'missing manifest': [() => ({ ...files, 'manifest.json': undefined }), /manifest\.json is missing/],
    'missing file': [() => ({ ...files, 'module.wasm': undefined }), /artifact \(in memory\): module\.wasm is missing/],
    'size mismatch': [() => ({ ...files, 'kernels/predict_0.wgsl': enc(new TextDecoder().decode(files['kernels/predict_0.wgsl']) + ' ') }),
      /kernels\/predict_0\.wgsl: its size is not the \d+ bytes the manifest lists/],
    'hash mismatch': [() => {
      const w = files['weights.safetensors'].slice();
      w[w.length - 1] ^= 1;
      return { ...files, 'weights.safetensors': w };
    }, /weights\.safetensors: its SHA-256 is not the one the manifest lists/],
    'bad JSON': [() => ({ ...files, 'manifest.json': enc('{"format": "webtensor-artifact",') }), /manifest\.json is not valid JSON/],
    'not an object': [() => ({ ...files, 'manifest.json': enc('[1]') }), /manifest\.json is not a JSON object/],
    'wrong format': [() => withManifest(files, (m) => { m.format = 'onnx'; }), /manifest\.json: format: must be "webtensor-artifact", got "onnx"/],
    'wrong format_version': [() => withManifest(files, (m) => { m.format_version = 3; }), /format_version 3 is not supported \(this runtime reads versions 1, 2\)/],
    'missing format_version': [() => withManifest(files, (m) => { delete m.format_version; }), /manifest\.json: \(the document\): "format_version" is missing/],
    'broken safetensors header': [() => {
      const w = files['weights.safetensors'].slice();
      w[9] = '!'.charCodeAt(0);
      return resign({ ...files, 'weights.safetensors': w });
    }, /weights\.safetensors: header is not valid UTF-8 JSON/],
    'safetensors header length past the end': [() => {
      const w = files['weights.safetensors'].slice();
      new DataView(w.buffer).setUint32(0, 1e6, true);
      return resign({ ...files, 'weights.safetensors': w });
    }, /weights\.safetensors: header length 1000000 runs past the end/],
    'truncated safetensors': [() => resign({ ...files, 'weights.safetensors': files['weights.safetensors'].slice(0, -4) }),
      /weights\.safetensors: tensor '.*': data_offsets .* run past the end/],
    'variable missing': [() => weightsWith((t) => { delete t['dense/bias']; }), /weights\.safetensors: variable 'dense\/bias' is missing/],
    'variable with the wrong shape': [() => weightsWith((t) => { t['dense/kernel'].shape = [3, 4]; }),
      /variable 'dense\/kernel' is float32 \[3,4\], the manifest lists float32 \[4,3\]/],
    'variable with the wrong dtype': [() => weightsWith((t) => { t['optimizer/iterations'].dtype = 'float32'; }),
      /variable 'optimizer\/iterations' is float32 \[\], the manifest lists int32 \[\]/],
    'unlisted file': [() => withManifest(files, (m) => { m.signatures.predict.webgpu.kernels[0].wgsl = 'kernels/nope.wgsl'; }),
      /signature 'predict' webgpu\.kernels\[0\] names "kernels\/nope\.wgsl", which "files" does not list/],
    'bad variable index': [() => withManifest(files, (m) => { m.signatures.predict.reads = [0, 7]; }),
      /signature 'predict': "reads" must be indices into "variables" \(0\.\.2\)/],
    'unsupported dtype': [() => withManifest(files, (m) => { m.signatures.predict.inputs[0].dtype = 'float64'; }),
      /signatures\.predict\.inputs\[0\]\.dtype: must be one of "float32", "int32", "bool", got "float64"/],
    'invalid WebAssembly': [() => resign({ ...files, 'module.wasm': enc('\0asm not really') }), /module\.wasm: unsupported WebAssembly version/],
    'missing driver export': [() => withManifest(files, (m) => { m.signatures.predict.wasm.driver = 'forward'; }),
      /module\.wasm: does not export the driver function 'forward'/],
    'address outside the memory': [() => withManifest(files, (m) => { m.signatures.predict.wasm.outputs = [65530]; }),
      /signature 'predict' output 'y' \[65530, 65626\) lies outside the 65536-byte memory/],
    'overlapping variables': [() => withManifest(files, (m) => {
      for (const s of Object.values(m.signatures)) if (s.wasm.variables['1'] !== undefined) s.wasm.variables['1'] = 1040;
    }), /variable 'dense\/bias' \[1040, 1052\) overlaps variable 'dense\/kernel'/],
    'variable at two addresses': [() => withManifest(files, (m) => { m.signatures.predict.wasm.variables['1'] = 1200; }),
      /variable 'dense\/bias' is at \d+, another signature has it at \d+/],
    'variable without an address': [() => withManifest(files, (m) => { delete m.signatures.train_step.wasm.variables['2']; }),
      /signature 'train_step' wasm: no address for variable 2 \('optimizer\/iterations'\)/],
    'no wasm section': [() => withManifest(files, (m) => { delete m.signatures.classify.wasm; }),
      /signature 'classify' wasm: section is missing \(this artifact has no WebAssembly code for it\)/],
  };
  for (const [name, [make, message]] of Object.entries(cases)) {
    test(name, async () => {
      await assert.rejects(webtensor.load(make(), { backend: 'wasm' }), (e) => {
        assert.ok(e instanceof webtensor.ArtifactError);
        assert.equal(e.name, 'ArtifactError');
        assert.match(e.message, /^webtensor: artifact /);
        assert.match(e.message, message);
        return true;
      });
    });
  }

  test('the undamaged fixture loads (the cases above fail for their own reason)', async () => {
    await predictOK(await webtensor.load(resign(files), { backend: 'wasm' }));
    const disk = await readFile(join(fx.dir, 'manifest.json'));
    assert.deepEqual(new Uint8Array(disk), files['manifest.json']);
  });
});
