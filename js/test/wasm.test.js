// The WebAssembly backend on the fixture artifact: bitwise equal to the
// float32 reference that replays its kernels' operation order.
import { modelSuite } from './model_suite.js';

modelSuite('wasm', { options: async () => ({ backend: 'wasm' }), tol: 0 });
