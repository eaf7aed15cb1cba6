// A drawing pad (mouse, pen and touch through pointer events) and the conversion of the
// drawing to the UCI digits' input format.
//
// The UCI digits were made from 32x32 bitmaps of size-normalised digits, divided into
// non-overlapping 4x4 blocks whose "on" pixels were counted, giving 8x8 images of counts
// 0..16 (Alpaydin and Kaynak, 1998; https://archive.ics.uci.edu/dataset/80). toDigit()
// does the same: it crops the ink's bounding box, scales it so that its longer side spans
// 32 pixels (centred), thresholds it to a bitmap, and counts each 4x4 block.

import { oncePerFrame } from './frame.js';

export class DrawPad {
  /** `canvas`: the pad; `onChange()` is called (at most once per frame) when the drawing changes. */
  constructor(canvas, onChange) {
    this.canvas = canvas;
    this.onChange = onChange;
    this.ctx = canvas.getContext('2d', { willReadFrequently: true });
    this.lineWidth = canvas.width / 8;   // thick: UCI strokes are 3-5 pixels of 32
    this.last = null;
    this._changed = oncePerFrame(() => this.onChange());
    canvas.addEventListener('pointerdown', (e) => {
      canvas.setPointerCapture(e.pointerId);
      this.last = this._point(e);
      this._stroke(this.last, this.last);
    });
    canvas.addEventListener('pointermove', (e) => {
      if (!this.last) return;
      const events = e.getCoalescedEvents ? e.getCoalescedEvents() : [e];
      for (const ev of events.length ? events : [e]) {
        const p = this._point(ev);
        this._stroke(this.last, p);
        this.last = p;
      }
    });
    const end = () => { this.last = null; };
    canvas.addEventListener('pointerup', end);
    canvas.addEventListener('pointercancel', end);
  }

  _point(e) {
    const r = this.canvas.getBoundingClientRect();
    return [((e.clientX - r.left) * this.canvas.width) / r.width, ((e.clientY - r.top) * this.canvas.height) / r.height];
  }

  _stroke([x0, y0], [x1, y1]) {
    const g = this.ctx;
    g.strokeStyle = '#111';
    g.lineWidth = this.lineWidth;
    g.lineCap = 'round';
    g.lineJoin = 'round';
    g.beginPath();
    g.moveTo(x0, y0);
    g.lineTo(x1 + 0.01, y1);
    g.stroke();
    this._changed();
  }

  clear() {
    this.ctx.clearRect(0, 0, this.canvas.width, this.canvas.height);
    this._changed();
  }

  /** The drawing as 64 counts 0..16 (8x8, row-major), or null when the pad is empty. */
  toDigit() {
    const { width: W, height: H } = this.canvas;
    const alpha = this.ctx.getImageData(0, 0, W, H).data;
    let x0 = W, y0 = H, x1 = -1, y1 = -1;
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        if (alpha[(y * W + x) * 4 + 3] > 32) {
          if (x < x0) x0 = x; if (x > x1) x1 = x;
          if (y < y0) y0 = y; if (y > y1) y1 = y;
        }
      }
    }
    if (x1 < 0) return null;
    const bw = x1 - x0 + 1, bh = y1 - y0 + 1;
    const scale = 32 / Math.max(bw, bh);
    const dw = bw * scale, dh = bh * scale;
    const small = new OffscreenCanvas(32, 32);
    const g = small.getContext('2d', { willReadFrequently: true });
    g.imageSmoothingEnabled = true;
    g.imageSmoothingQuality = 'high';
    g.drawImage(this.canvas, x0, y0, bw, bh, (32 - dw) / 2, (32 - dh) / 2, dw, dh);
    const bitmap = g.getImageData(0, 0, 32, 32).data;
    const counts = new Array(64).fill(0);
    for (let y = 0; y < 32; y++) {
      for (let x = 0; x < 32; x++) {
        if (bitmap[(y * 32 + x) * 4 + 3] >= 64) counts[(y >> 2) * 8 + (x >> 2)]++;
      }
    }
    return counts;
  }
}

/** Draw 64 counts 0..16 as an 8x8 grey image on `canvas` (dark = ink). */
export function drawPreview(canvas, counts) {
  const g = canvas.getContext('2d');
  const cell = canvas.width / 8;
  g.fillStyle = '#fff';
  g.fillRect(0, 0, canvas.width, canvas.height);
  if (!counts) return;
  counts.forEach((v, i) => {
    const shade = Math.round(255 * (1 - v / 16));
    g.fillStyle = `rgb(${shade}, ${shade}, ${shade})`;
    g.fillRect((i % 8) * cell, Math.floor(i / 8) * cell, cell, cell);
  });
}
