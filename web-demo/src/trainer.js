// Training in the page: shuffled mini-batches through the artifact's `train_step`
// signature, test accuracy through its `evaluate` signature (the whole test set at once).

/** mulberry32: a small seeded PRNG (returns floats in [0, 1)), so runs are repeatable. */
export function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6D2B79F5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Fisher-Yates shuffle of 0..n-1 with `random`. */
export function permutation(n, random) {
  const p = Int32Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [p[i], p[j]] = [p[j], p[i]];
  }
  return p;
}

/** Index of the largest of `n` values of `a` starting at `offset`. */
export function argmax(a, offset = 0, n = a.length - offset) {
  let best = 0;
  for (let k = 1; k < n; k++) if (a[offset + k] > a[offset + best]) best = k;
  return best;
}

// Let the browser paint and handle input between steps: wasm steps finish without
// ever leaving the microtask queue otherwise. A MessageChannel task has no 4 ms clamp.
const channel = new MessageChannel();
const nextTask = () => new Promise((resolve) => { channel.port1.onmessage = resolve; channel.port2.postMessage(0); });

export class Trainer {
  /**
   * `model`: a loaded webtensor Model with signatures train_step (x [B,8,8,1] float32,
   * y [B] int32) and evaluate (x [nTest,8,8,1]); `data`: from loadDigits(); `seed`: shuffling.
   */
  constructor(model, data, seed = 0) {
    this.model = model;
    this.data = data;
    this.batchSize = model.signatures.train_step.inputs[0].shape[0];
    this.stepsPerEpoch = Math.floor(data.nTrain / this.batchSize);   // the last partial batch is dropped
    this.random = mulberry32(seed);
    this.epoch = 0;
    this.step = 0;
    this.stopRequested = false;
  }

  /** Test-set accuracy in [0, 1] (one run of the `evaluate` signature). */
  async evaluate() {
    const { xTest, yTest, nTest } = this.data;
    const logits = (await this.model.run('evaluate', [xTest])).output_0.dataSync();
    const classes = logits.length / nTest;
    let correct = 0;
    for (let i = 0; i < nTest; i++) correct += argmax(logits, i * classes, classes) === yTest[i];
    return correct / nTest;
  }

  /**
   * Train `epochs` epochs (stops early after the current step when stop() is called).
   * Callbacks: onStep({epoch, step, loss, stepsPerSecond}) after every step, onEpoch({epoch,
   * step, accuracy, stepsPerSecond}) after each epoch's evaluation (stepsPerSecond: that
   * epoch's training steps over their wall time, evaluation excluded).
   */
  async run(epochs, { onStep = () => {}, onEpoch = () => {} } = {}) {
    const { xTrain, yTrain, nTrain } = this.data;
    const B = this.batchSize;
    const x = new Float32Array(B * 64);
    const y = new Int32Array(B);
    this.stopRequested = false;
    for (let e = 0; e < epochs && !this.stopRequested; e++) {
      const order = permutation(nTrain, this.random);
      const start = performance.now();
      let lastYield = start, steps = 0, windowStart = start, windowSteps = 0, rate = 0;
      for (let s = 0; s < this.stepsPerEpoch && !this.stopRequested; s++) {
        for (let j = 0; j < B; j++) {
          const i = order[s * B + j];
          x.set(xTrain.subarray(i * 64, i * 64 + 64), j * 64);
          y[j] = yTrain[i];
        }
        const loss = (await this.model.trainStep(x, y)).dataSync()[0];
        this.step++;
        steps++;
        windowSteps++;
        const now = performance.now();
        if (now - windowStart >= 500) {
          rate = (1000 * windowSteps) / (now - windowStart);
          windowStart = now;
          windowSteps = 0;
        }
        onStep({ epoch: this.epoch + 1, step: this.step, loss, stepsPerSecond: rate || (1000 * steps) / (now - start) });
        if (now - lastYield > 40) {
          await nextTask();
          lastYield = performance.now();
        }
      }
      const stepsPerSecond = (1000 * steps) / (performance.now() - start);
      if (steps < this.stepsPerEpoch) break;                         // stopped mid-epoch
      this.epoch++;
      onEpoch({ epoch: this.epoch, step: this.step, accuracy: await this.evaluate(), stepsPerSecond });
      await nextTask();
    }
  }

  stop() { this.stopRequested = true; }
}
