// Run Python files inside Pyodide in Node, with webtensor installed from its wheel.
//
//   node tests/pyodide/run_pyodide.mjs [--webgpu] <webtensor wheel> <file.py>... 
//
// Every file is written to /home/pyodide (on sys.path); the last one runs with runPythonAsync
// (top-level await allowed) and its final expression, a string, is printed as "RESULT <string>".
// --webgpu gives Python a navigator.gpu from the 'webgpu' npm package (Dawn), set after
// loadPyodide() as shared/PLATFORM.md says (needs VK_ICD_FILENAMES on machines without a GPU).
import { loadPyodide } from 'pyodide';
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';

const args = process.argv.slice(2);
const webgpu = args[0] === '--webgpu';
const [wheel, ...files] = webgpu ? args.slice(1) : args;
try {
  const py = await loadPyodide();
  const site = py.runPython('import site; site.getsitepackages()[0]');
  py.unpackArchive(new Uint8Array(readFileSync(wheel)), 'wheel', { extractDir: site });
  if (webgpu) {
    const { create, globals } = await import('webgpu');
    Object.assign(globalThis, globals);
    globalThis.navigator = { gpu: create([]) };
  }
  for (const f of files) py.FS.writeFile(`/home/pyodide/${basename(f)}`, new Uint8Array(readFileSync(f)));
  py.runPython('import sys; sys.path.insert(0, "/home/pyodide")');
  const result = await py.runPythonAsync(readFileSync(files.at(-1), 'utf8'));
  console.log(`RESULT ${result}`);
  process.exit(0);
} catch (e) {
  console.error(String(e && e.message || e).slice(-6000));   // a PythonError's message is its traceback
  process.exit(1);
}
