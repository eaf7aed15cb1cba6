// A hand-drawn <canvas> chart: training loss per step (raw and smoothed, left axis)
// and test accuracy after each epoch (right axis, 0..100 %), against the step number.

import { oncePerFrame } from './frame.js';

const COLORS = { raw: 'rgba(37, 99, 235, 0.22)', loss: '#2563eb', acc: '#ea580c', grid: '#e5e7eb', text: '#667085' };
const PAD = { left: 46, right: 46, top: 14, bottom: 30 };

export class Chart {
  constructor(canvas) {
    this.canvas = canvas;
    this._schedule = oncePerFrame(() => this.draw());
    this.clear();
  }

  /** Forget all points (a new training run). `stepsHint`: x-axis extent to start with. */
  clear(stepsHint = 100) {
    this.losses = [];          // [step, loss]
    this.smoothed = [];        // [step, exponential moving average of the loss]
    this.accuracies = [];      // [step, accuracy in 0..1]
    this.stepsHint = stepsHint;
    this._schedule();
  }

  addLoss(step, loss) {
    const prev = this.smoothed.length ? this.smoothed[this.smoothed.length - 1][1] : loss;
    this.losses.push([step, loss]);
    this.smoothed.push([step, Number.isFinite(loss) ? 0.9 * prev + 0.1 * loss : prev]);
    this._schedule();
  }

  addAccuracy(step, accuracy) {
    this.accuracies.push([step, accuracy]);
    this._schedule();
  }

  draw() {
    const c = this.canvas;
    const dpr = window.devicePixelRatio || 1;
    const cssW = c.clientWidth || c.width, cssH = c.clientHeight || c.height;
    if (c.width !== Math.round(cssW * dpr)) { c.width = Math.round(cssW * dpr); c.height = Math.round(cssH * dpr); }
    const g = c.getContext('2d');
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, cssW, cssH);
    const w = cssW - PAD.left - PAD.right, h = cssH - PAD.top - PAD.bottom;
    const maxStep = Math.max(this.stepsHint, ...this.losses.map((p) => p[0]), ...this.accuracies.map((p) => p[0]), 1);
    const finite = this.losses.map((p) => p[1]).filter(Number.isFinite);
    const maxLoss = niceCeil(Math.max(0.5, ...finite.slice(0, 50), ...this.smoothed.map((p) => p[1])));
    const X = (s) => PAD.left + (w * s) / maxStep;
    const YL = (v) => PAD.top + h - (h * Math.min(v, maxLoss)) / maxLoss;
    const YA = (a) => PAD.top + h - h * a;

    g.font = '11px system-ui, sans-serif';
    g.lineWidth = 1;
    for (let k = 0; k <= 4; k++) {                        // grid, loss ticks (left), accuracy ticks (right)
      const y = PAD.top + (h * k) / 4;
      g.strokeStyle = COLORS.grid;
      g.beginPath(); g.moveTo(PAD.left, y); g.lineTo(PAD.left + w, y); g.stroke();
      g.fillStyle = COLORS.loss; g.textAlign = 'right'; g.textBaseline = 'middle';
      g.fillText((maxLoss * (1 - k / 4)).toFixed(2), PAD.left - 6, y);
      g.fillStyle = COLORS.acc; g.textAlign = 'left';
      g.fillText(`${100 - 25 * k}%`, PAD.left + w + 6, y);
    }
    g.fillStyle = COLORS.text; g.textAlign = 'center'; g.textBaseline = 'top';
    for (const s of ticks(maxStep)) g.fillText(String(s), X(s), PAD.top + h + 6);
    g.textAlign = 'right';
    g.fillText('step', PAD.left + w, PAD.top + h + 17);

    line(g, this.losses, X, YL, COLORS.raw, 1);
    line(g, this.smoothed, X, YL, COLORS.loss, 2);
    line(g, this.accuracies, X, YA, COLORS.acc, 2);
    g.fillStyle = COLORS.acc;
    for (const [s, a] of this.accuracies) { g.beginPath(); g.arc(X(s), YA(a), 3, 0, 2 * Math.PI); g.fill(); }

    g.textAlign = 'left'; g.textBaseline = 'top';                 // legend
    g.fillStyle = COLORS.loss; g.fillRect(PAD.left + 10, PAD.top + 6, 14, 3);
    g.fillStyle = COLORS.text; g.fillText('training loss', PAD.left + 28, PAD.top + 1);
    g.fillStyle = COLORS.acc; g.fillRect(PAD.left + 118, PAD.top + 6, 14, 3);
    g.fillStyle = COLORS.text; g.fillText('test accuracy', PAD.left + 136, PAD.top + 1);
  }
}

function line(g, points, X, Y, color, width) {
  if (points.length === 0) return;
  g.strokeStyle = color;
  g.lineWidth = width;
  g.beginPath();
  points.forEach(([s, v], i) => (i ? g.lineTo(X(s), Y(v)) : g.moveTo(X(s), Y(v))));
  g.stroke();
}

function niceCeil(v) {
  const p = 10 ** Math.floor(Math.log10(v));
  return [1, 2, 3, 4, 5, 6, 8, 10].map((m) => m * p).find((m) => m >= v);
}

function ticks(max) {
  const step = niceCeil(max / 6);
  const out = [];
  for (let s = 0; s <= max; s += step) out.push(s);
  return out;
}
