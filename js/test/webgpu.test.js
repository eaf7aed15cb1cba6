// The WebGPU backend in Node: Dawn (npm `webgpu`) on SwiftShader when there is
// no GPU. Tolerance: GPU compilers may contract a * b + c into an FMA.
import { getGPU } from './helpers.js';
import { modelSuite } from './model_suite.js';

modelSuite('webgpu', {
  options: async () => {
    const { gpu } = await getGPU();
    return gpu && { backend: 'webgpu', gpu };
  },
  tol: 1e-5,
});
