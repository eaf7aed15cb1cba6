// Node entry point: everything from index.js, plus loading artifacts from the
// file system. `load(source)` reads a path (or a file: URL) with `fs`, and
// fetches http(s): URLs like the browser entry.

import { constants } from 'node:fs';
import { open, realpath } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

import { ArtifactError, urlReader } from './artifact.js';
import { loadModel } from './model.js';

export * from './index.js';

/**
 * A reader for an artifact directory on disk: `read(name, maxBytes)` resolves
 * to the file's bytes (at most maxBytes + 1), or null if missing. The file's
 * real path (symlinks resolved) must stay inside the directory's, and be a
 * regular file: it is opened without following a final symlink and without
 * blocking (a FIFO cannot hang the loader), and never read past maxBytes + 1.
 */
function fileReader(dir) {
  let root = null;
  const dirs = new Map(); // folder name -> its real path
  const inside = (real) => real === root || real.startsWith(root.endsWith(sep) ? root : root + sep);
  const flags = constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW;
  const opened = async (name, path, plain) => {
    if (!inside(path)) throw new ArtifactError(`${name} resolves outside the artifact directory`);
    try {
      return await open(path, flags);
    } catch (e) {
      if (e.code === 'ENOENT' || e.code === 'ENOTDIR') return null;
      if (e.code === 'ELOOP' && plain) return undefined; // a symlink: resolved and checked by the caller
      throw new ArtifactError(`${name} cannot be opened (${e.code})`);
    }
  };
  return async (name, maxBytes) => {
    root ??= await realpath(dir).catch((e) => {
      throw new ArtifactError(e.code === 'ENOENT' ? 'the artifact directory does not exist' : `the artifact directory cannot be read (${e.code})`);
    });
    const cut = name.lastIndexOf('/');
    const folder = cut < 0 ? '' : name.slice(0, cut);
    if (!dirs.has(folder)) {
      dirs.set(folder, folder ? realpath(join(root, ...folder.split('/'))).catch((e) => (e.code === 'ENOENT' ? null : Promise.reject(e))) : Promise.resolve(root));
    }
    let parent;
    try {
      parent = await dirs.get(folder);
    } catch (e) {
      throw new ArtifactError(`${name} cannot be opened (${e.code})`);
    }
    if (parent === null) return null;
    const path = join(parent, name.slice(cut + 1));
    let file = await opened(name, path, true);
    if (file === undefined) {
      let real;
      try {
        real = await realpath(path);
      } catch (e) {
        if (e.code === 'ENOENT') return null;
        throw new ArtifactError(`${name} cannot be opened (${e.code})`);
      }
      file = await opened(name, real, false);
    }
    if (file === null) return null;
    try {
      const info = await file.stat();
      if (!info.isFile()) throw new ArtifactError(`${name} is not a regular file`);
      const out = new Uint8Array(Math.min(info.size, maxBytes + 1));
      let n = 0;
      while (n < out.length) {
        // in chunks: one read of 2 GiB or more aborts Node (its length must be an int32)
        const { bytesRead } = await file.read(out, n, Math.min(out.length - n, 2 ** 30), n);
        if (bytesRead === 0) break;
        n += bytesRead;
      }
      return out.subarray(0, n);
    } finally {
      await file.close();
    }
  };
}

/**
 * Load an artifact from a directory path, a file: or http(s): URL, or an
 * object {'manifest.json': Uint8Array, ...}; options as in the browser entry
 * (in Node pass `gpu: create([])` from the npm 'webgpu' package for WebGPU;
 * `worker: true` runs the WebAssembly in a worker_threads Worker, which
 * `timeout` ms can stop; `threads: 'auto'` counts os.availableParallelism()).
 */
export function load(source, options) {
  return loadModel(source, options, (location) => {
    if (/^https?:/i.test(location)) return urlReader(location);
    return fileReader(location.startsWith('file:') ? fileURLToPath(location) : location);
  }, spawnWorker, availableParallelism);
}

/** The Worker of `load(source, {worker: true})` (js/worker.js) or of a thread (js/thread.js): a worker_threads Worker. */
async function spawnWorker(script = 'worker.js') {
  const w = new (await import('node:worker_threads')).Worker(new URL(`./${script}`, import.meta.url));
  if (script === 'thread.js') w.unref(); // threads (parked in Atomics.wait between calls) never keep Node alive
  return w;
}
