#!/usr/bin/env node
// webtensor's command line: `webtensor serve MODEL_BASE_PATH... [--port 8501] [--host 127.0.0.1]
// [--model_name NAME] [--backend wasm|webgpu|auto] [--max_batch_wait_ms 0] [--max_body_bytes N]`.

import { serve } from '../serve.js';

const USAGE = `usage: webtensor serve MODEL_BASE_PATH [MODEL_BASE_PATH ...] [options]

Serve exported webtensor artifacts with TensorFlow Serving's REST API. Each MODEL_BASE_PATH holds
numbered version folders (1/, 2/, ...), each an artifact from Model.export; the highest is served.

options:
  --port N               port to listen on (default 8501; 0 picks a free one)
  --host H               address to bind (default 127.0.0.1)
  --model_name NAME      the model's name (one base path only; default: the folder's name)
  --backend B            wasm (default), webgpu or auto
  --max_batch_wait_ms M  how long a partial batch waits for more requests (default 0:
                         only for those already received)
  --max_body_bytes N     largest request body accepted (default 16777216)`;

function parse(argv) {
  const opts = { paths: [] };
  const names = { port: 'int', host: 'str', model_name: 'str', backend: 'str', max_batch_wait_ms: 'num', max_body_bytes: 'int' };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '-h' || arg === '--help') return null;
    if (!arg.startsWith('--')) {
      opts.paths.push(arg);
      continue;
    }
    let [key, value] = arg.slice(2).split(/=(.*)/s);
    if (!(key in names)) throw new Error(`unknown option --${key}`);
    if (value === undefined) value = argv[++i];
    if (value === undefined) throw new Error(`--${key} needs a value`);
    if (names[key] !== 'str') {
      const n = Number(value);
      if (!Number.isFinite(n) || n < 0 || (names[key] === 'int' && !Number.isInteger(n))) throw new Error(`--${key}: not a valid number: ${value}`);
      value = n;
    }
    opts[key] = value;
  }
  return opts;
}

async function main(argv) {
  const [command, ...rest] = argv;
  let opts;
  try {
    if (command !== 'serve') throw new Error(command ? `unknown command '${command}'` : 'no command');
    opts = parse(rest);
    if (opts && opts.paths.length === 0) throw new Error('give a MODEL_BASE_PATH');
    if (opts?.model_name && opts.paths.length > 1) throw new Error('--model_name needs exactly one MODEL_BASE_PATH');
  } catch (e) {
    console.error(`webtensor: ${e.message}\n\n${USAGE}`);
    return 2;
  }
  if (!opts) {
    console.log(USAGE);
    return 0;
  }
  const models = opts.paths.map((basePath) => ({ basePath, ...(opts.model_name ? { name: opts.model_name } : {}) }));
  const server = await serve(models, {
    port: opts.port ?? 8501,
    host: opts.host ?? '127.0.0.1',
    backend: opts.backend ?? 'wasm',
    maxBatchWaitMs: opts.max_batch_wait_ms ?? 0,
    maxBodyBytes: opts.max_body_bytes ?? 16 << 20,
    log: (line) => console.log(line),
  });
  console.log(`listening on http://${opts.host ?? '127.0.0.1'}:${server.port}`);
  const stop = (signal) => {
    console.log(`${signal}: finishing in-flight requests`);
    server.close().then(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  return null;
}

main(process.argv.slice(2)).then((code) => {
  if (code !== null) process.exitCode = code;
}, (e) => {
  console.error(`webtensor: ${e.message}`);
  process.exitCode = 1;
});
