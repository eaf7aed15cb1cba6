// Node entry point: everything from index.js, plus loading artifacts from the
// file system. `load(source)` reads a path (or a file: URL) with `fs`, and
// fetches http(s): URLs like the browser entry.

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { urlReader } from './artifact.js';
import { loadModel } from './model.js';

export * from './index.js';

/** A reader for an artifact directory on disk: name -> Uint8Array, or null if missing. */
function fileReader(dir) {
  return async (name) => {
    try {
      return new Uint8Array(await readFile(join(dir, name)));
    } catch (e) {
      if (e.code === 'ENOENT') return null;
      throw e;
    }
  };
}

/**
 * Load an artifact from a directory path, a file: or http(s): URL, or an
 * object {'manifest.json': Uint8Array, ...}; options as in the browser entry
 * (in Node pass `gpu: create([])` from the npm 'webgpu' package for WebGPU).
 */
export function load(source, options) {
  return loadModel(source, options, (location) => {
    if (/^https?:/i.test(location)) return urlReader(location);
    return fileReader(location.startsWith('file:') ? fileURLToPath(location) : location);
  });
}
