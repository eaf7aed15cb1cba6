// The demo page: load the digits and an exported artifact with the npm package, train it in
// the page on WebGPU or WebAssembly, and classify digits drawn on the pad.
//
// window.demo.state mirrors what the page shows (tests read it): phase ('loading' | 'ready' |
// 'training' | 'done' | 'error'), backend, adapter, webgpu {available, reason, adapter, software},
// threads (WebAssembly threads per kernel in use; null on WebGPU), isolated (crossOriginIsolated:
// whether threads can run), notice, losses [[step, loss]], accuracies [[step, accuracy]], stepsPerSecond (per epoch),
// epoch, step, prediction, probabilities (of predictedDigit, the 8x8 counts last classified),
// digit (the counts now on the pad), error.

import * as webtensor from 'webtensor';
import { Chart } from './chart.js';
import { loadDigits } from './data.js';
import { DrawPad, drawPreview } from './drawpad.js';
import { Trainer, argmax } from './trainer.js';

const $ = (id) => document.getElementById(id);
const state = {
  phase: 'loading', backend: null, adapter: null, webgpu: null, threads: null, isolated: globalThis.crossOriginIsolated === true,
  notice: null, model: null,
  losses: [], accuracies: [], stepsPerSecond: [], epoch: 0, step: 0,
  prediction: null, probabilities: null, digit: null, error: null,
};
const chart = new Chart($('chart'));
let build, data, model = null, trainer = null, loading = null;

window.demo = { state, webtensor, get model() { return model; }, get pad() { return pad; }, get data() { return data; } };

function setStatus(text, error = false) {
  $('status').textContent = text;
  $('status').classList.toggle('error', error);
}

function notice(text) {
  state.notice = text;
  $('notice').textContent = text ?? '';
  $('notice').hidden = !text;
}

function fail(err) {
  console.error(err);
  state.phase = 'error';
  state.error = String(err?.message ?? err);
  setStatus(`Error: ${state.error}`, true);
  setButtons();
}

function setButtons() {
  const busy = state.phase === 'loading' || state.phase === 'training';
  $('train').disabled = busy || !model;
  $('reset').disabled = busy;
  $('stop').disabled = state.phase !== 'training';
  $('model').disabled = $('backend').disabled = $('threads').disabled = state.phase === 'training';
}

const describeAdapter = (info) => (info ? [info.description || info.device || info.vendor, info.architecture].filter(Boolean).join(' · ') || 'unnamed adapter' : null);

/** Is WebGPU usable here? {available, adapter (description), reason}. */
async function probeWebGPU() {
  if (!('gpu' in navigator)) return { available: false, reason: 'this browser has no navigator.gpu' };
  try {
    const adapter = await navigator.gpu.requestAdapter({ powerPreference: 'high-performance' });
    if (!adapter) return { available: false, reason: 'navigator.gpu.requestAdapter() found no adapter' };
    return { available: true, adapter: describeAdapter(adapter.info), software: webtensor.isSoftwareAdapter(adapter.info) };
  } catch (e) {
    return { available: false, reason: `requestAdapter() failed: ${e.message}` };
  }
}

/** Load the chosen artifact on the chosen backend, falling back to WebAssembly with a notice. */
async function loadModel() {
  const kind = $('model').value, wanted = $('backend').value;
  // WebAssembly threads per kernel: Web Workers on one shared memory, where the page is
  // cross-origin isolated (serve.py's COOP/COEP headers); else one thread and model.threadsNotice.
  const threads = ['', 'auto'].includes($('threads').value) ? 'auto' : Number($('threads').value);
  state.phase = 'loading';
  setButtons();
  trainer?.stop();
  model?.dispose();
  model = null;
  const url = new URL(build.models[kind].path, location.href);
  setStatus(`Loading the ${kind.toUpperCase()} artifact…`);
  let why = null;
  if (wanted === 'webgpu' && !state.webgpu.available) {
    why = `WebGPU is not available (${state.webgpu.reason}): training runs on WebAssembly instead.`;
  } else {
    try {
      model = await webtensor.load(url, { backend: wanted, threads });
    } catch (e) {
      if (wanted !== 'webgpu') throw e;
      why = `WebGPU failed (${e.message}): training runs on WebAssembly instead.`;
    }
  }
  if (!model) model = await webtensor.load(url, { backend: 'wasm', threads });
  if (!why && wanted === 'auto' && model.backend === 'wasm') {
    why = !state.webgpu.available ? `WebGPU is not available (${state.webgpu.reason}): training runs on WebAssembly.`
      : state.webgpu.software ? 'This WebGPU adapter renders on the CPU (software): training runs on WebAssembly, which is faster here.'
        : 'This WebGPU adapter does not meet the model\'s limits: training runs on WebAssembly.';
  }
  if (model.threadsNotice) {
    why = [why, `${model.threadsNotice.replace(/^webtensor\.load: /, '')} (python web-demo/serve.py sends them).`].filter(Boolean).join(' ');
  }
  notice(why);
  state.model = kind;
  state.backend = model.backend;
  state.adapter = describeAdapter(model.adapterInfo);
  state.threads = model.backend === 'wasm' ? model.stats().wasmThreads : null;
  $('backend-info').textContent = model.backend === 'webgpu' ? `WebGPU (${state.adapter})`
    : `WebAssembly (CPU, ${state.threads} thread${state.threads === 1 ? '' : 's'})`;
  trainer = new Trainer(model, data, 0);
  Object.assign(state, { losses: [], accuracies: [], stepsPerSecond: [], epoch: 0, step: 0 });
  chart.clear(trainer.stepsPerEpoch * Number($('epochs').value));
  const accuracy = await trainer.evaluate();
  state.accuracies.push([0, accuracy]);
  chart.addAccuracy(0, accuracy);
  showMetrics({ epoch: 0, step: 0, accuracy });
  state.phase = 'ready';
  setStatus(`Ready: ${kind.toUpperCase()} with its initial weights, ${build.models[kind].parameters.toLocaleString()} parameters, ` +
    `${data.nTrain} training / ${data.nTest} test images, batches of ${trainer.batchSize}.`);
  setButtons();
  predictDrawing();
}

function reload() {
  loading = loadModel().catch(fail);
  return loading;
}

function showMetrics({ epoch, step, loss, accuracy, stepsPerSecond }) {
  if (epoch !== undefined) $('m-epoch').textContent = String(epoch);
  if (step !== undefined) $('m-step').textContent = String(step);
  if (loss !== undefined) $('m-loss').textContent = loss.toFixed(4);
  if (accuracy !== undefined) $('m-accuracy').textContent = `${(100 * accuracy).toFixed(1)} %`;
  if (stepsPerSecond !== undefined) $('m-speed').textContent = stepsPerSecond.toFixed(stepsPerSecond < 10 ? 1 : 0);
}

async function train() {
  const epochs = Math.max(1, Math.min(200, Math.floor(Number($('epochs').value)) || 1));
  state.phase = 'training';
  setButtons();
  const t = trainer;
  chart.stepsHint = t.step + t.stepsPerEpoch * epochs;
  setStatus(`Training ${epochs} epoch(s) on ${model.backend === 'webgpu' ? 'WebGPU' : 'WebAssembly'}…`);
  try {
    await t.run(epochs, {
      onStep: ({ epoch, step, loss, stepsPerSecond }) => {
        state.losses.push([step, loss]);
        Object.assign(state, { epoch: epoch - 1, step });
        chart.addLoss(step, loss);
        showMetrics({ epoch, step, loss, stepsPerSecond });
      },
      onEpoch: ({ epoch, step, accuracy, stepsPerSecond }) => {
        state.accuracies.push([step, accuracy]);
        state.stepsPerSecond.push(stepsPerSecond);
        state.epoch = epoch;
        chart.addAccuracy(step, accuracy);
        showMetrics({ epoch, accuracy, stepsPerSecond });
        predictDrawing();
      },
    });
    if (t !== trainer) return;                       // the model was replaced meanwhile
    state.phase = 'done';
    const last = state.accuracies[state.accuracies.length - 1];
    const speed = state.stepsPerSecond.length ? `, ${state.stepsPerSecond[state.stepsPerSecond.length - 1].toFixed(0)} steps/s` : '';
    setStatus(`${t.stopRequested ? 'Stopped' : 'Done'} after ${state.epoch} epoch(s): test accuracy ${(100 * last[1]).toFixed(1)} %${speed}. Draw a digit →`);
    setButtons();
  } catch (e) {
    if (t === trainer) fail(e);
  }
}

// ---- the drawing pad -------------------------------------------------------------------

const pad = new DrawPad($('pad'), () => predictDrawing());
const probs = $('probs');
const rows = Array.from({ length: 10 }, (_, k) => {
  const label = document.createElement('span');
  const bar = document.createElement('span');
  const pct = document.createElement('span');
  label.textContent = String(k);
  bar.className = 'bar';
  bar.append(document.createElement('i'));
  pct.className = 'pct';
  probs.append(label, bar, pct);
  return { label, bar, pct };
});
let predicting = false, again = false;

function softmax(logits) {
  const m = Math.max(...logits);
  const e = logits.map((v) => Math.exp(v - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
}

/** Classify what is on the pad (at most one prediction in flight; the latest drawing wins). */
async function predictDrawing() {
  if (predicting) { again = true; return; }
  const digit = pad.toDigit();
  state.digit = digit;
  drawPreview($('preview'), digit);
  if (!digit || !model || state.phase === 'loading') {
    if (!digit) showPrediction(null);
    return;
  }
  predicting = true;
  try {
    const x = Float32Array.from(digit, (v) => v / 16);
    const logits = Array.from((await model.predict(x)).dataSync());
    state.predictedDigit = digit;
    showPrediction(softmax(logits));
  } catch (e) {
    if (model && !model.isDisposed) console.error(e);
  } finally {
    predicting = false;
    if (again) { again = false; predictDrawing(); }
  }
}

function showPrediction(p) {
  state.probabilities = p;
  state.prediction = p ? argmax(p) : null;
  $('prediction').textContent = p ? String(state.prediction) : '–';
  rows.forEach((row, k) => {
    const v = p ? p[k] : 0;
    row.bar.firstChild.style.width = `${(100 * v).toFixed(1)}%`;
    row.pct.textContent = p ? `${(100 * v).toFixed(1)} %` : '';
    for (const el of [row.label, row.bar, row.pct]) el.classList.toggle('top', k === state.prediction);
  });
}

// ---- start ------------------------------------------------------------------------------

$('train').addEventListener('click', () => train());
$('stop').addEventListener('click', () => trainer?.stop());
$('reset').addEventListener('click', () => reload());
$('model').addEventListener('change', () => reload());
$('backend').addEventListener('change', () => reload());
$('threads').addEventListener('change', () => reload());
$('clear').addEventListener('click', () => pad.clear());

(async () => {
  const params = new URLSearchParams(location.search);
  for (const key of ['model', 'backend', 'threads', 'epochs']) if (params.has(key)) $(key).value = params.get(key);
  build = await (await fetch('build.json')).json();
  [data, state.webgpu] = await Promise.all([loadDigits(build.data.json), probeWebGPU()]);
  $('webgpu-info').textContent = state.webgpu.available ? `available (${state.webgpu.adapter})` : `not available: ${state.webgpu.reason}`;
  if (!state.webgpu.available) {
    $('backend').querySelector('option[value=webgpu]').textContent = 'WebGPU (not available)';
  }
  await reload();
})().catch(fail);
