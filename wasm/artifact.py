"""Loading an artifact's "wasm" sections (``docs/artifact.md``): the ``"wasm"`` artifact loader."""
from __future__ import annotations

import sys
import threading
import warnings

from ..core.runtime.artifacts import (ArtifactError, engine_reason as _reason, register_loader,
                                      storage_nbytes, to_storage as _storage)
from ..core.runtime.parallelism import intra_op_threads
from ..core.runtime.util import require
from .engines import BrowserEngine, WasmtimeEngine, _Caller
from .module_check import check_module

PAGE = 65536
MAX_MEMORY = 65536 * PAGE                   # a wasm32 memory: at most 65536 pages (4 GiB)


def _nbytes(spec) -> int:
    return storage_nbytes(spec["shape"])


class WasmArtifact:
    kind = "wasm"

    """Runs an artifact's "wasm" sections: ``module.wasm`` in wasmtime (Pyodide: the page's
    WebAssembly) with one memory of the signatures' largest ``memory_bytes`` (also its maximum: a
    driver cannot grow it), ``module_threads.wasm`` with workers for more threads; variables and
    the large constants (the sections' ``"constants"``) are copied to their addresses once; each run
    writes the inputs, calls the signature's driver (optionally under a deadline: wasmtime epoch
    interruption) and copies the outputs out. The module's imports, exports and function types are
    checked (``module_check``) before it is compiled. A signature with a ``"rows_driver"`` (a
    symbolic batch whose kernels take their rows at run time) runs fewer rows than its chunk through
    it (``run(name, inputs, rows)``; docs/artifact.md, "Run-time rows")."""
    interruptible = True

    @classmethod
    def auto(cls, artifact) -> bool:
        return True                         # runs wherever wasmtime is installed, and in Pyodide

    def __init__(self, artifact, fail, *, timeout=None, memory_limit=None):
        manifest, files, weights, DTYPES = artifact.manifest, artifact.files, artifact.weights, artifact.dtypes
        self.lock = threading.RLock()       # the model's own store and memory
        self.browser = sys.platform == "emscripten"    # Pyodide: the page's WebAssembly (no wasmtime there)
        if self.browser and timeout is not None:
            raise ValueError("webtensor.load: timeout needs wasmtime; in Pyodide the page's WebAssembly cannot "
                             "be interrupted (use timeout=None)")
        wasmtime = None if self.browser else require("wasmtime", "webtensor.load(backend='wasm')")
        variables, sigs = manifest["variables"], manifest["signatures"]
        memory_bytes, address, constants = 0, {}, {}
        for name, sig in sigs.items():
            w, what = sig.get("wasm"), f"signature '{name}' wasm"
            if w is None:
                fail(f"manifest.json: {what}: section is missing (this artifact has no WebAssembly code for it)")
            memory_bytes = max(memory_bytes, w["memory_bytes"])
            if "rows_driver" in w and "batch" not in sig:
                fail(f'manifest.json: {what}: "rows_driver" needs a "batch" section (a symbolic batch)')
            if w.get("rows_driver") in [s["wasm"]["driver"] for s in sigs.values() if "wasm" in s]:
                fail(f'manifest.json: {what}: "rows_driver" {w["rows_driver"]!r} is a driver (() -> ()), not a '
                     "rows driver ((i32) -> ())")
            for key in ("inputs", "outputs"):
                if len(w[key]) != len(sig[key]):
                    fail(f'manifest.json: {what}: "{key}" must hold one byte address per {key[:-1]} ({len(sig[key])})')
            vars_ = w.get("variables", {})
            for i in set(sig.get("reads", [])) | set(sig.get("writes", [])):
                if str(i) not in vars_:
                    fail(f"manifest.json: {what}: no address for variable {i} ('{variables[i]['name']}'), which the "
                         "signature uses")
            for key, addr in vars_.items():
                i = int(key)                              # the schema allows only canonical decimal indices
                if i >= len(variables):
                    fail(f"manifest.json: {what}: variables {{\"{key}\": {addr}}}: there is no variable {i}")
                if address.get(i, addr) != addr:
                    fail(f"manifest.json: {what}: variable '{variables[i]['name']}' is at {addr}, another signature "
                         f"has it at {address[i]} (variables must have one address)")
                address[i] = addr
            for key, tname in w.get("constants", {}).items():
                addr = int(key)                           # the schema allows only canonical decimal addresses
                if tname not in weights:
                    fail(f"weights.safetensors: constant '{tname}' ({what} constants) is missing")
                if weights[tname][0] not in DTYPES:
                    fail(f"weights.safetensors: constant '{tname}' is {weights[tname][0]}; constants are float32, "
                         "int32 or bool")
                if constants.get(addr, tname) != tname:
                    fail(f"manifest.json: {what}: constants at {addr} names '{tname}', another signature has "
                         f"'{constants[addr]}' there")
                constants[addr] = tname
        regions = sorted([(a, a + _nbytes(variables[i]), f"variable '{variables[i]['name']}'") for i, a in address.items()]
                         + [(a, a + _nbytes({"shape": weights[n][1]}), f"constant '{n}'") for a, n in constants.items()])
        for (a0, e0, w0), (a1, e1, w1) in zip(regions, regions[1:]):
            if a1 < e0:
                fail(f"manifest.json: wasm: {w1} [{a1}, {e1}) overlaps {w0}")
        for name, sig in sigs.items():
            for key in ("inputs", "outputs"):
                for a, spec in zip(sig["wasm"][key], sig[key]):
                    regions.append((a, a + _nbytes(spec), f"signature '{name}' {key[:-1]} '{spec['name']}'"))
        for a, e, w in regions:
            if e > memory_bytes:
                fail(f"manifest.json: wasm: {w} [{a}, {e}) lies outside the {memory_bytes}-byte memory")
        pages = max(1, -(-memory_bytes // PAGE))
        if memory_limit is not None and pages * PAGE > memory_limit:
            raise MemoryError(f"webtensor.load: the artifact's WebAssembly memory is {pages * PAGE} bytes, over "
                              f"memory_limit={memory_limit}")
        # every listed module is checked (the same verdict on engines with and without relaxed SIMD);
        # wasmtime has relaxed SIMD, so module_relaxed.wasm runs where the artifact has one
        modules = [m for m in ("module.wasm", "module_relaxed.wasm") if m in files]
        # threads (wasm/threads.py): the threaded module where the artifact has one and more than one
        # thread is asked for (webtensor.config.threading); not under a deadline, which would stop
        # only the driver. Pyodide: Web Workers, where the page is cross-origin isolated
        self.threads = intra_op_threads() if timeout is None else 1
        threaded = [m for m in ("module_threads.wasm", "module_relaxed_threads.wasm") if m in files]
        layouts = [sig["wasm"]["threads"] for sig in sigs.values() if "threads" in sig["wasm"]]
        for lay in layouts:                       # a workspace where not even a second thread fits
            if lay["scratch"] + lay["stride"] > MAX_MEMORY:
                fail(f"manifest.json: wasm: threads {{\"scratch\": {lay['scratch']}, \"stride\": {lay['stride']}}}: "
                     "a second thread's workspace ends past WebAssembly's 4 GiB memory")
        why = BrowserEngine.threads_unavailable() if self.browser and self.threads > 1 and threaded else None
        if why:
            warnings.warn(f"webtensor.load: {self.threads} threads are set, but the model runs on 1: {why}",
                          RuntimeWarning)
            self.threads = 1
        if self.threads > 1 and threaded and layouts:
            need = max(lay["scratch"] + (self.threads - 1) * lay["stride"] for lay in layouts)
            if need > MAX_MEMORY:
                fail(f"manifest.json: wasm: {self.threads} threads need {need} bytes of memory (scratch + "
                     f"{self.threads - 1} x stride), more than WebAssembly's 4 GiB; load it with fewer threads")
            memory_bytes = max(memory_bytes, need)
            pages = max(1, -(-memory_bytes // PAGE))
            if memory_limit is not None and pages * PAGE > memory_limit:
                raise MemoryError(f"webtensor.load: the artifact's WebAssembly memory with {self.threads} threads is "
                                  f"{pages * PAGE} bytes, over memory_limit={memory_limit}")
            modules = threaded
        else:
            self.threads = 1
        for m in modules:
            try:
                check_module(files[m], [sig["wasm"]["driver"] for sig in sigs.values()], pages, shared=m in threaded,
                             rows_drivers=[sig["wasm"]["rows_driver"] for sig in sigs.values() if "rows_driver" in sig["wasm"]])
            except ValueError as e:
                fail(m + str(e)[len("module.wasm"):])     # its messages start "module.wasm: "
        self.variables, self.address, self.timeout = variables, address, timeout
        with_rows = {name: sig["wasm"]["rows_driver"] for name, sig in sigs.items() if "rows_driver" in sig["wasm"]}
        self.workers = self.wake = None     # wake: a threaded module's (threads.py), called before inputs are written
        if self.browser:
            self.engine = eng = BrowserEngine(pages, fma=None, maximum_pages=pages, shared=self.threads > 1)
            self.module = chosen = modules[-1] if eng.fma else modules[0]     # Node 20: no relaxed SIMD
            try:
                module = eng.compile(files[chosen])
                exports = eng.exports(module)
            except Exception as e:
                fail(f"{chosen} cannot be instantiated by this JavaScript engine ({_reason(e)})")
            self.drivers = {name: getattr(exports, sig["wasm"]["driver"]) for name, sig in sigs.items()}
            self.rows_drivers = {name: getattr(exports, d) for name, d in with_rows.items()}
            if self.threads > 1:    # a page's main thread may not block: the driver then spins
                exports.threads_setup(self.threads, 1 if eng.can_block else 0)
                self.wake = getattr(exports, "wake", None)
                try:
                    self.workers = eng.workers(module, self.threads, exports.stop)
                except Exception as e:
                    fail(f"{chosen}: a thread could not start ({_reason(e)})")
        else:
            self.module = chosen = modules[-1]
            # the memory cannot grow past what the manifest declares: a driver's memory.grow returns -1
            self.engine = eng = WasmtimeEngine(pages, fma=True, maximum_pages=pages, interruptible=timeout is not None,
                                               shared=self.threads > 1)
            try:
                module = wasmtime.Module(eng.engine, files[chosen])
            except Exception as e:
                fail(f"{chosen} is not a valid WebAssembly module ({_reason(e)})")
            try:
                inst = wasmtime.Instance(eng.store, module, [eng.memory])
            except Exception as e:
                fail(f"{chosen} cannot be instantiated ({_reason(e)})")
            # check_module proved every driver is () -> (): the unchecked fast call is safe
            self.drivers = {name: _Caller(eng.store, inst.exports(eng.store)[sig["wasm"]["driver"]], 0)
                            for name, sig in sigs.items()}
            self.rows_drivers = {name: _Caller(eng.store, inst.exports(eng.store)[d], 1) for name, d in with_rows.items()}
            if self.threads > 1:
                inst.exports(eng.store)["threads_setup"](eng.store, self.threads, 1)
                wake = inst.exports(eng.store).get("wake")
                self.wake = _Caller(eng.store, wake, 0) if wake is not None else None
                self.workers = eng.workers(module, self.threads)
        self.io = {name: (sig["wasm"]["inputs"], [(a, _nbytes(s)) for a, s in zip(sig["wasm"]["outputs"], sig["outputs"])])
                   for name, sig in sigs.items()}
        self.chunk = {name: sigs[name]["batch"]["chunk"] for name in with_rows}
        # signatures whose drivers split kernels over the threads (older manifests do not say: all)
        self.wakes = {name for name, sig in sigs.items() if sig["wasm"].get("threads", {}).get("rounds") != 0}
        self.whole = {name for name in with_rows if "rows_input" in sigs[name]["batch"]}   # a train step's outputs
        self.row_outs = {}      # (name, rows) -> its outputs' (address, bytes), made once: a batch-1 run is ~20 us
        for addr, tname in constants.items():           # large constants: stored once, in the weights
            dt, _, data = weights[tname]
            eng.write(addr, _storage(data, dt))
        self.host = {}
        for i, v in enumerate(variables):
            data = _storage(weights[v["name"]][2], v["dtype"])
            if i in address:
                eng.write(address[i], data)
            else:
                self.host[i] = data

    def _call(self, name, rows=None):
        call, args = (self.drivers[name], ()) if rows is None else (self.rows_drivers[name], (rows,))
        if self.browser:
            try:
                call(*args)
            except Exception as e:          # a JavaScript RuntimeError (a trap)
                raise ArtifactError(f"webtensor: signature '{name}': the WebAssembly driver trapped "
                                    f"({_reason(e)})") from None
            return
        wasmtime = self.engine.wasmtime
        timer = self.engine.deadline(self.timeout) if self.timeout is not None else None
        try:
            call(*args)
        except wasmtime.Trap as e:
            if e.trap_code == wasmtime.TrapCode.INTERRUPT:
                raise TimeoutError(f"webtensor: signature '{name}' did not finish within {self.timeout} s (the "
                                   "variables it writes may be partly updated)") from None
            raise ArtifactError(f"webtensor: signature '{name}': the WebAssembly driver trapped "
                                f"({_reason(e)})") from None
        finally:
            if timer is not None:
                timer.cancel()

    def takes_rows(self, name) -> bool:
        """Whether signature ``name`` runs fewer rows than its chunk (``run``'s ``rows``)."""
        return name in self.rows_drivers

    def run(self, name, inputs: list[bytes], rows: int | None = None) -> list[bytes]:
        """Write ``inputs``, run, read the outputs. ``rows`` (1 <= rows <= chunk, where
        :meth:`takes_rows`): the inputs and outputs hold only the first ``rows`` rows (a train
        step's: the inputs other than the row count, whose outputs are whole)."""
        ins, outs = self.io[name]
        if rows is not None:
            outs = self.row_outs.get((name, rows)) or self._row_outs(name, rows)
        if self.wake is not None and name in self.wakes:    # the threads wake (~150 us after a long
            self.wake()                                     # sleep on a VM) while inputs are copied
        for a, data in zip(ins, inputs):
            self.engine.write(a, data)
        self._call(name, rows)
        return [bytes(self.engine.read(a, n)) for a, n in outs]

    def _row_outs(self, name, rows) -> list:
        """Signature ``name``'s outputs as (address, bytes) in a run of ``rows`` rows (cached)."""
        if not self.takes_rows(name) or not isinstance(rows, int) or not 1 <= rows <= self.chunk[name]:
            raise ValueError(f"webtensor: signature '{name}' cannot run {rows} rows")
        outs = self.io[name][1]
        if name not in self.whole:
            outs = [(a, n // self.chunk[name] * rows) for a, n in outs]
        self.row_outs[name, rows] = outs        # at most chunk per signature
        return outs

    def read_variables(self, indices) -> list[bytes]:
        return [self.host[i] if i in self.host else
                bytes(self.engine.read(self.address[i], _nbytes(self.variables[i]))) for i in indices]

    def write_variable(self, i, data: bytes):
        if i in self.host:
            self.host[i] = data
        else:
            self.engine.write(self.address[i], data)

    def stats(self) -> dict:
        return {"wasm_memory_bytes": self.engine.size, "wasm_module": self.module, "wasm_threads": self.threads}

    def dispose(self):
        if self.workers is not None:
            self.workers.close()
        self.drivers = self.rows_drivers = self.engine = self.workers = None


register_loader("wasm", WasmArtifact, rank=1)
