// The notebook page: Pyodide (the npm package's files, served by this site) with the webtensor
// wheel unpacked into its site-packages, running the code in the text area.
//
// window.notebook.state (tests read it): phase ('booting' | 'ready' | 'running' | 'error'),
// runs (completed runs), ok (whether the last run raised nothing), output (text of the last
// run), error (the last exception's text), webtensorVersion, bootSeconds, boot (the boot line).

const $ = (id) => document.getElementById(id);
const state = { phase: 'booting', runs: 0, ok: null, output: '', error: null, webtensorVersion: null, bootSeconds: null, boot: null };
let pyodide = null;

function write(text, cls) {
  const span = document.createElement('span');
  if (cls) span.className = cls;
  span.textContent = text.endsWith('\n') ? text : `${text}\n`;
  $('output').append(span);
  if (cls !== 'sys') state.output += span.textContent;
}

function setStatus(text) { $('status').textContent = text; }

async function loadExample(name) {
  const r = await fetch(`examples/${name}.py`);
  if (!r.ok) throw new Error(`examples/${name}.py: HTTP ${r.status}`);
  $('code').value = await r.text();
}

/** Run `code` in Pyodide; resolves to true when it raised nothing. */
async function run(code = $('code').value) {
  if (!pyodide || state.phase === 'running') throw new Error('Python is not ready');
  state.phase = 'running';
  state.output = '';
  state.error = null;
  $('run').disabled = true;
  $('output').textContent = '';
  setStatus('Running…');
  const start = performance.now();
  try {
    await pyodide.runPythonAsync(code);
    state.ok = true;
    setStatus(`Done in ${((performance.now() - start) / 1000).toFixed(1)} s.`);
  } catch (e) {
    state.ok = false;
    state.error = String(e.message ?? e);
    write(state.error, 'err');
    setStatus('The code raised an exception (see the output).');
  } finally {
    state.runs++;
    state.phase = 'ready';
    $('run').disabled = false;
  }
  return state.ok;
}

window.notebook = { state, run, loadExample, get pyodide() { return pyodide; } };

async function boot() {
  const start = performance.now();
  const build = await (await fetch('build.json')).json();
  const indexURL = new URL(build.pyodide, location.href).href;
  const { loadPyodide } = await import(new URL('pyodide.mjs', indexURL).href);
  pyodide = await loadPyodide({ indexURL, stdout: (s) => write(s), stderr: (s) => write(s, 'err') });
  const wheel = await fetch(build.wheel);
  if (!wheel.ok) throw new Error(`${build.wheel}: HTTP ${wheel.status}`);
  const site = pyodide.runPython("import sysconfig; sysconfig.get_path('purelib')");
  pyodide.unpackArchive(await wheel.arrayBuffer(), 'wheel', { extractDir: site });
  state.webtensorVersion = pyodide.runPython('import webtensor; webtensor.__version__');
  state.bootSeconds = (performance.now() - start) / 1000;
  const python = pyodide.runPython('import platform; platform.python_version()');
  state.boot = `Pyodide ${pyodide.version} (Python ${python}), webtensor ${state.webtensorVersion} from ${build.wheel.split('/').pop()}; ready in ${state.bootSeconds.toFixed(1)} s`;
  write(state.boot, 'sys');
  state.phase = 'ready';
  $('run').disabled = false;
  setStatus('Ready.');
}

$('example').addEventListener('change', () => loadExample($('example').value).catch((e) => write(String(e), 'err')));
$('run').addEventListener('click', () => run().catch(() => {}));
$('code').addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) { e.preventDefault(); $('run').click(); }
  if (e.key === 'Tab') { e.preventDefault(); e.target.setRangeText('    ', e.target.selectionStart, e.target.selectionEnd, 'end'); }
});

const example = new URLSearchParams(location.search).get('example');
if (example) $('example').value = example;
Promise.all([loadExample($('example').value), boot()]).catch((e) => {
  state.phase = 'error';
  state.error = String(e.message ?? e);
  write(`Could not start Python: ${state.error}`, 'err');
  setStatus('Failed to start.');
});
