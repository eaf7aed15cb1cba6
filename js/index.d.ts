// Type declarations of the npm package `webtensor` (both entry points).

/** Tensor dtypes of the runtime; bool data is one byte (0/1) per element. */
export type DType = 'float32' | 'int32' | 'bool';

/** The typed array holding a tensor of each dtype. */
export interface DataTypeMap {
  float32: Float32Array;
  int32: Int32Array;
  bool: Uint8Array;
}

export type TypedArray = Float32Array | Int32Array | Uint8Array;

/** A host tensor: a typed array with a shape and a dtype. */
export declare class Tensor<D extends DType = DType> {
  readonly shape: number[];
  readonly dtype: D;
  readonly size: number;
  readonly rank: number;
  readonly isDisposed: boolean;
  /** The values (the backing array, not a copy). */
  data(): Promise<DataTypeMap[D]>;
  /** The values, synchronously (the backing array, not a copy). */
  dataSync(): DataTypeMap[D];
  /** The values as nested arrays (a number for a scalar). */
  arraySync(): number | unknown[];
  /** Drop the data; later reads throw. */
  dispose(): void;
}

type NestedArray = number | boolean | NestedArray[];

/**
 * Make a tensor from a typed array (used without copying when its type
 * matches `dtype`) or (nested) numbers. `shape` defaults to the nesting or
 * `[data.length]`, `dtype` to the typed array's or 'float32'.
 * @throws Error when the size does not match the shape, or for an unknown dtype.
 */
export declare function tensor<D extends DType = 'float32'>(
  data: TypedArray | ArrayLike<number> | NestedArray,
  shape?: number[],
  dtype?: D,
): Tensor<D>;

/** A model input or variable value: a tensor, or a typed array of the right dtype and length. */
export type TensorLike = Tensor | TypedArray;

/** The typed array viewing a dtype's storage in WebAssembly memory (bool is stored as 0/1 int32). */
export interface StorageTypeMap {
  float32: Float32Array;
  int32: Int32Array;
  bool: Int32Array;
}

/**
 * One signature input's slot in a wasm model's memory (`model.inputTensor()`):
 * `run`/`predict` given it for its own slot copy nothing (for another slot of
 * the same model: one copy inside the memory). Lifetime: until `dispose()` or
 * the model's; a run of ANOTHER signature of the model makes it stale (their
 * memory regions overlap), and a stale one throws until `write()` fills it.
 */
export declare class ResidentTensor<D extends DType = DType> {
  readonly shape: number[];
  readonly dtype: D;
  readonly size: number;
  readonly rank: number;
  /** The signature and input whose slot this is. */
  readonly signature: string;
  readonly input: string;
  readonly isDisposed: boolean;
  /** Whether a run of another signature may have overwritten the values. */
  readonly isStale: boolean;
  /**
   * The slot itself as a typed array over the model's memory (writing it sets the input), valid
   * until this tensor or its model is disposed.
   * @throws Error when disposed or stale, or while a run is queued on the model.
   */
  view(): StorageTypeMap[D];
  /**
   * Copy values in (makes a stale tensor valid again); returns this.
   * @throws Error for a wrong dtype, size or shape, when disposed, or while a run is queued on the model.
   */
  write(values: DataTypeMap[D] | Tensor<D>): this;
  /** A copy of the values (as TF.js's dataSync). @throws Error when disposed or stale. */
  dataSync(): DataTypeMap[D];
  data(): Promise<DataTypeMap[D]>;
  /** Release the slot's tensor (inputTensor() then makes a new one). Idempotent. */
  dispose(): void;
}

/**
 * A Tensor viewing an output slot of a wasm model's memory (`run(..., {output: 'view'})`):
 * valid until the next run on that model or its dispose(); reading it later throws.
 */
export declare class OutputView<D extends DType = DType> extends Tensor<D> {}

/** What `run` does with the outputs. */
export interface RunOptions {
  /**
   * 'copy' (default): fresh typed arrays. 'view' (wasm on the calling thread only): OutputView
   * tensors over the model's memory, valid until the next run on the model; bool outputs are
   * still copied (stored as int32).
   */
  output?: 'copy' | 'view';
  /** Outputs to copy into the caller's typed arrays (of the output's dtype and size); the returned Tensors wrap them. */
  into?: Record<string, TypedArray>;
}

/** A run input: a host value, or a resident tensor of the same model. */
export type InputLike = TensorLike | ResidentTensor;

export interface TensorSpec {
  name: string;
  dtype: DType;
  shape: number[];
}

export interface VariableSpec extends TensorSpec {
  trainable: boolean;
}

/** What the model's counters say (tests read them to check that memory stays flat). */
export interface ModelStats {
  backend: 'wasm' | 'webgpu';
  /** Signature runs completed. */
  runs: number;
  /** wasm: size of the WebAssembly memory. */
  wasmMemoryBytes?: number;
  /** wasm: threads running each large kernel (1 unless `threads` > 1 took effect). */
  wasmThreads?: number;
  /** webgpu: live GPU buffers this model created, and their bytes. */
  gpuBuffers?: number;
  gpuBufferBytes?: number;
}

export interface AdapterInfo {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
}

/** Calls are queued: each runs after the previous call on the same model has finished. */
export declare class Model {
  /** The backend this model runs on. */
  readonly backend: 'wasm' | 'webgpu';
  /** The WebGPU adapter's description, or null on wasm. */
  readonly adapterInfo: AdapterInfo | null;
  /**
   * Why `load(..., {threads})` runs on fewer threads than asked (e.g. the
   * page is not cross-origin isolated; the same text was logged with
   * console.warn), or null.
   */
  readonly threadsNotice: string | null;
  /** `length`: a symbolic length (docs/artifact.md "Symbolic length"): each input's and output's length axis (-1: none) and the largest length accepted. */
  readonly signatures: Record<string, { inputs: TensorSpec[]; outputs: TensorSpec[]; length?: { maximum: number; inputs: number[]; outputs: number[] } }>;
  readonly variables: VariableSpec[];
  readonly isDisposed: boolean;
  /**
   * Run a signature. `inputs`: in input order, by name, or one value for a
   * one-input signature. Resolves to the outputs by name.
   * @throws Error naming the signature and input for a wrong name, shape or dtype.
   */
  run(signature: string, inputs: InputLike | InputLike[] | Record<string, InputLike>, options?: RunOptions): Promise<Record<string, Tensor>>;
  /**
   * The resident tensor of a signature's input (a name or an index; default: predict's first
   * input), the same object until disposed. Needs the wasm backend on the calling thread.
   * @throws Error for an unknown signature or input, another backend, or a disposed model.
   */
  inputTensor(signature?: string, input?: string | number): ResidentTensor;
  /**
   * run('predict'): its output (an array if it has several). Several inputs: predict([a, b, c]),
   * predict({a, b, c}) (keys: the signature's input names, the model's Input names) or predict(a, b, c).
   */
  predict(inputs: InputLike | InputLike[] | Record<string, InputLike>): Promise<Tensor | Tensor[]>;
  predict(...inputs: InputLike[]): Promise<Tensor | Tensor[]>;
  /**
   * run('train_step', [inputs, targets]): one optimizer step, updating the variables; resolves to the loss.
   * Several inputs: trainStep([a, b, c], targets) or trainStep({a, b, c}, targets). A train step
   * exported with symbolic_batch=True (its batch section has rows_input) takes any n rows, 1 <= n <=
   * batch.maximum (else a RangeError), its loss and update over those n rows (docs/artifact.md
   * "Symbolic batch: train steps").
   */
  trainStep(inputs: InputLike | InputLike[] | Record<string, InputLike>, targets: InputLike): Promise<Tensor>;
  /** Copies of every variable, by name. */
  getWeights(): Promise<Record<string, Tensor>>;
  /**
   * Overwrite any subset of the variables.
   * @throws Error for an unknown name, a wrong dtype or shape (nothing is written then).
   */
  setWeights(weights: Record<string, TensorLike> | Map<string, TensorLike>): Promise<void>;
  /** Every variable as safetensors bytes (readable by Python's webtensor.safetensors_io and `safetensors`). */
  saveWeights(): Promise<Uint8Array>;
  stats(): ModelStats;
  /** Free GPU buffers / memory now (and the device, if `load` created it). Idempotent. */
  dispose(): void;
}

/** The part of WebGPU's GPU object that `load` uses (navigator.gpu, or `create([])` from npm 'webgpu'). */
export interface GPULike {
  requestAdapter(options?: object): Promise<unknown | null>;
}

export interface LoadOptions {
  /**
   * 'auto' (default): WebGPU when a hardware adapter exists and meets the
   * artifact's limits, else WebAssembly (also on a software adapter such as
   * SwiftShader or llvmpipe: see isSoftwareAdapter). 'webgpu': any adapter.
   */
  backend?: 'auto' | 'webgpu' | 'wasm';
  /** The GPU to use instead of navigator.gpu (the model keeps a reference until dispose()). */
  gpu?: GPULike;
  /**
   * A GPUDevice to use instead of requesting one; dispose() leaves it alive. The caller keeps the
   * GPU object it came from alive (in Node, Dawn tears the device down when that is collected).
   */
  device?: unknown;
  /**
   * Run the model's WebAssembly in a Worker (browsers: a module Web Worker
   * running js/worker.js; Node: a worker_threads Worker), so that it never
   * blocks the calling thread. The artifact is checked on the calling thread
   * first. WebAssembly only: with backend 'auto' the model runs on wasm;
   * backend 'webgpu' is rejected (not supported in a worker yet).
   * `stats()` reports what the worker sent after its last call.
   */
  worker?: boolean;
  /**
   * Needs `worker: true` (WebAssembly on the calling thread cannot be
   * interrupted, so `timeout` alone is rejected). A limit in milliseconds, in
   * (0, 2^31 - 1], on loading in the worker (compiling and instantiating
   * module.wasm) and on each later call's request (a signature run, reading
   * or writing variables). A request over it terminates the worker and
   * rejects with an Error named 'TimeoutError' ("webtensor: signature
   * 'predict' did not finish within 100 ms; the model's worker was
   * terminated"); the model's later calls reject, dispose() still works.
   */
  timeout?: number;
  /**
   * Threads per kernel on the wasm backend, an integer in [1, 16], or
   * 'auto' (the default): the logical cores (browsers: navigator.hardwareConcurrency;
   * Node: os.availableParallelism()), at most 4. With more than one, an
   * artifact exported with `wasm_threads=True` runs its module_threads.wasm
   * on a shared WebAssembly.Memory: this thread drives, `threads - 1` Workers
   * (js/thread.js) take tiles of each large kernel; results are bitwise those
   * of one thread. Needs shared memory (browsers: a cross-origin isolated
   * page, served with `Cross-Origin-Opener-Policy: same-origin` and
   * `Cross-Origin-Embedder-Policy: require-corp`); otherwise, or without a
   * threaded module, one thread (`stats().wasmThreads`), and where `threads`
   * was given a console warning and `model.threadsNotice` (the default falls
   * back silently). dispose() ends the Workers; Node's are unref()'d. With
   * `worker: true` they are Workers of the model's worker, where the driver
   * waits for them blocked rather than spinning as a page's main thread must.
   */
  threads?: number | 'auto';
}

/** An artifact given as its files' bytes: {'manifest.json': ..., 'module.wasm': ..., ...}. */
export type ArtifactFiles = Record<string, Uint8Array | ArrayBuffer> | Map<string, Uint8Array | ArrayBuffer>;

/**
 * Load an artifact (docs/artifact.md): a directory URL as a string or URL
 * object (browser entry; Node entry: also a path or file: URL) or its files' bytes.
 * @throws Error naming the damaged file/variable, a missing backend, or an unmet limit;
 * with `worker: true`, errors thrown in the worker keep their name and message,
 * and a `timeout` overrun rejects with an Error named 'TimeoutError'.
 */
export declare function load(source: string | { readonly href: string } | ArtifactFiles, options?: LoadOptions): Promise<Model>;

/**
 * Whether a GPUAdapterInfo (adapter.info, device.adapterInfo) describes a
 * software adapter rendering on the CPU: `isFallbackAdapter`, or SwiftShader,
 * llvmpipe, lavapipe or WARP by name. `load` with backend 'auto' uses
 * WebAssembly there.
 */
export declare function isSoftwareAdapter(info: {
  vendor?: string; architecture?: string; device?: string; description?: string; isFallbackAdapter?: boolean;
} | null | undefined): boolean;

export interface SafetensorsTensor {
  dtype: string;
  shape: number[];
  /** Raw little-endian bytes. */
  bytes: Uint8Array;
}

/** Parse safetensors bytes. @throws Error prefixed with `what` for a damaged file. */
export declare function parseSafetensors(bytes: Uint8Array, what?: string): {
  tensors: Map<string, SafetensorsTensor>;
  metadata: Record<string, string>;
};

/** Serialize tensors (raw bytes or typed arrays) to safetensors bytes, byte-identical to Python's writer. */
export declare function writeSafetensors(
  tensors: Record<string, { dtype: string; shape: number[]; bytes: Uint8Array | TypedArray }> | Map<string, { dtype: string; shape: number[]; bytes: Uint8Array | TypedArray }>,
  metadata?: Record<string, string>,
): Uint8Array;

/** The runtime's version. */
export declare const VERSION: string;
/** The artifact format this runtime reads: "webtensor-artifact", version 1. */
/**
 * A damaged, malformed, hostile or unsupported artifact (`name` is
 * 'ArtifactError', as the Python runtime's class): what `load` rejects with,
 * and what a run rejects with when the WebAssembly driver traps.
 */
export declare class ArtifactError extends Error {
  readonly name: 'ArtifactError';
}

export declare const FORMAT: string;
export declare const FORMAT_VERSION: number;
