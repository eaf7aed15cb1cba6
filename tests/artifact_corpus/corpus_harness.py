"""Run corpus cases (``make_corpus.py``) through Python's ``webtensor.load``: the outcome rule, a
guard on every file opened while a case runs, and a watchdog, shared by
``tests/python/test_artifact_corpus.py`` and the JS test's cross-runtime check.

    python3 tests/artifact_corpus/corpus_harness.py OUTDIR        # {name: outcome} of every case, as JSON
    python3 tests/artifact_corpus/corpus_harness.py --build       # the same on a fresh corpus in a temporary dir
    python3 tests/artifact_corpus/corpus_harness.py OUTDIR --details [NAME ...]   # outcome, message, seconds, reads

Outcome: ``webtensor.load(dir, backend=..., timeout=1.0)`` (no timeout on ``webgpu``, where the
loader refuses one); if it loaded, run every signature once on zero inputs of its declared shapes
and dtypes, then ``dispose()``; ``"ok"`` or the class name of the first exception. Inputs the
harness will not build (an unknown dtype, a dimension over 2^31 - 1, more than 2^24 elements, more
than 32 dimensions: a loader should never have accepted them) give ``"HarnessRefused"``.

The guard (``sys.addaudithook``, "open" events) records every path opened during a case that is
not a Python module or under ``sys.prefix``/site-packages/webtensor's own package folders and
resolves (symlinks followed, except a final one opened with ``O_NOFOLLOW``; relative paths against
the case directory, as ``dir_fd`` opens are) outside the case directory; such an open of a path
under the corpus folder, ``/dev``, ``/proc``, ``/sys`` or ``/etc`` is also refused
(``PermissionError``) so that a broken loader cannot hang on ``/dev/zero`` or read the secret.
The watchdog runs each case in a daemon thread and gives up after ``cap`` seconds (outcome
``"Hang"``; a stuck thread is left behind), then opens any FIFO of the case for writing so that a
reader blocked on it wakes up.
"""
from __future__ import annotations

import json
import os
import site
import stat
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
MAX_ELEMENTS = 1 << 24
MAX_DIM = (1 << 31) - 1
TIMEOUT_S = 1.0
CAP_S = 10.0


class HarnessRefused(Exception):
    """The loader accepted an input spec that the harness will not allocate."""


def zeros(spec):
    """Zeros of ``spec``'s shape and dtype (numpy), or raise :class:`HarnessRefused`."""
    import numpy as np
    dtypes = {"float32": np.float32, "int32": np.int32, "bool": np.bool_}
    dtype, shape = spec.get("dtype") if isinstance(spec, dict) else None, spec.get("shape") if isinstance(spec, dict) else None
    if not isinstance(dtype, str) or dtype not in dtypes:
        raise HarnessRefused(f"input dtype {dtype!r}")
    if (not isinstance(shape, (list, tuple)) or len(shape) > 32
            or not all(isinstance(d, (int, float)) and not isinstance(d, bool) and d == d // 1 and 0 <= d <= MAX_DIM
                       for d in shape)):    # 8.0 is 8, as JSON is read in JS
        raise HarnessRefused(f"input shape {str(shape)[:80]}")
    shape = [int(d) for d in shape]
    n = 1
    for d in shape:
        n *= d
    if n > MAX_ELEMENTS:
        raise HarnessRefused(f"input shape {list(shape)} has {n} elements")
    return np.zeros(tuple(shape), dtypes[dtype])


def outcome(case_dir, backend, timeout=TIMEOUT_S) -> tuple[str, str]:
    """``(outcome, message)`` of one case (see the module docstring)."""
    import webtensor as wt
    kwargs = {} if backend == "webgpu" else {"timeout": timeout}
    try:
        model = wt.load(case_dir, backend=backend, **kwargs)
    except Exception as e:      # noqa: BLE001 - the class name is the outcome
        return type(e).__name__, str(e)
    result = ("ok", "")
    try:
        for name, sig in model.signatures.items():
            model.run(name, *[zeros(s) for s in sig["inputs"]])
    except Exception as e:      # noqa: BLE001
        result = (type(e).__name__, str(e))
    try:
        model.dispose()
    except Exception as e:      # noqa: BLE001
        if result[0] == "ok":
            result = (type(e).__name__, str(e))
    return result


# ---- the open guard -------------------------------------------------------------------------------

def _real(path: str) -> str:
    """Real path of a possibly missing path: resolve the longest existing prefix."""
    head, tail = path, []
    while True:
        try:
            return os.path.join(os.path.realpath(head, strict=True), *reversed(tail))
        except OSError:
            head, t = os.path.split(head)
            if not t:
                return os.path.normpath(os.path.join(head, *reversed(tail)))
            tail.append(t)


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


class OpenGuard:
    """Records (and for dangerous places refuses) opens outside the current case directory."""

    _installed = False
    _lock = threading.Lock()
    active: "OpenGuard | None" = None

    def __init__(self, case_dir: str, corpus_dir: str):
        self.case = os.path.realpath(case_dir)
        self.corpus = os.path.realpath(corpus_dir)
        self.outside: list[str] = []
        self.refused: list[str] = []

    @classmethod
    def install(cls):
        with cls._lock:
            if cls._installed:
                return
            import webtensor  # noqa: F401  (its package folders are ignored below)
            prefixes = {sys.prefix, sys.base_prefix, sys.exec_prefix, *site.getsitepackages(), site.getusersitepackages()}
            cls._ignored_dirs = tuple(os.path.realpath(p) for p in prefixes if p)
            cls._tls = threading.local()
            sys.addaudithook(cls._hook)
            cls._installed = True

    @classmethod
    def _package_dirs(cls):
        dirs = set()
        for name, mod in list(sys.modules.items()):
            if (name == "webtensor" or name.startswith("webtensor.")) and getattr(mod, "__file__", None):
                dirs.add(os.path.dirname(os.path.realpath(mod.__file__)))
        return dirs

    def __enter__(self):
        self._pkg = tuple(self._package_dirs())
        OpenGuard.active = self
        return self

    def __exit__(self, *exc):
        OpenGuard.active = None

    @staticmethod
    def _hook(event, args):
        if event != "open":
            return
        guard = OpenGuard.active
        if guard is None or getattr(OpenGuard._tls, "busy", False):
            return
        OpenGuard._tls.busy = True
        try:
            refuse = guard._check(args)
        finally:
            OpenGuard._tls.busy = False
        if refuse:
            raise PermissionError(13, "refused by the corpus test's open guard (outside the case directory)", refuse)

    def _check(self, args):
        path = args[0] if args else None
        flags = args[2] if len(args) > 2 and isinstance(args[2], int) else 0
        if isinstance(path, int) or path is None:
            return None
        try:
            path = os.fsdecode(os.fspath(path))
        except (TypeError, ValueError):
            return None
        if path.endswith((".py", ".pyc", ".so", ".pyd", ".pth")) or "__pycache__" in path:
            return None
        norm = os.path.normpath(path if os.path.isabs(path) else os.path.join(self.case, path))
        if flags & getattr(os, "O_NOFOLLOW", 0):
            head, name = os.path.split(norm)
            real = os.path.join(_real(head), name)
        else:
            real = _real(norm)
        if _inside(real, self.case):
            return None
        dangerous = _inside(real, self.corpus) or real.startswith(("/dev/", "/proc/", "/sys/", "/etc/"))
        if not dangerous and any(_inside(p, d) for p in (norm, real) for d in self._ignored_dirs + self._pkg):
            return None     # a module, or package data such as webtensor's artifact.schema.json (a symlink)
        self.outside.append(real if real == path else f"{path} -> {real}")
        if dangerous:
            self.refused.append(real)
            return real
        return None


# ---- running a case ---------------------------------------------------------------------------------

def _fifos(case_dir):
    for d, dirs, names in os.walk(case_dir):
        for n in dirs + names:
            p = os.path.join(d, n)
            try:
                if stat.S_ISFIFO(os.lstat(p).st_mode):
                    yield p
            except OSError:
                pass


def unstick_fifos(case_dir):
    """Wake any reader blocked opening a FIFO of the case (it then reads end-of-file)."""
    for p in _fifos(case_dir):
        try:
            fd = os.open(p, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:
            continue            # ENXIO: nobody is waiting
        os.close(fd)


def run_case(entry: dict, corpus_dir: str, cap: float = CAP_S, timeout: float = TIMEOUT_S) -> dict:
    """Run one index entry: ``{outcome, message, seconds, outside, refused}``."""
    OpenGuard.install()
    case_dir = os.path.join(corpus_dir, entry["dir"])
    box: dict = {}

    def target():
        try:
            box["result"] = outcome(case_dir, entry["backend"], timeout)
        except BaseException as e:  # noqa: BLE001 - SystemExit and friends from a broken loader
            box["result"] = (type(e).__name__, str(e))
        box["end"] = time.perf_counter()

    guard = OpenGuard(case_dir, corpus_dir)
    with guard:
        start = time.perf_counter()
        t = threading.Thread(target=target, name=f"corpus-{entry['name']}", daemon=True)
        t.start()
        t.join(cap)
        hung = t.is_alive()
    unstick_fifos(case_dir)
    if hung:
        name, message, seconds = "Hang", f"no outcome after {cap} s (the thread is left running)", cap
    else:
        (name, message), seconds = box["result"], box["end"] - start
    return {"outcome": name, "message": message, "seconds": round(seconds, 3),
            "outside": guard.outside, "refused": guard.refused}


def load_index(corpus_dir) -> list[dict]:
    with open(os.path.join(corpus_dir, "index.json")) as f:
        return json.load(f)


def load_secret(corpus_dir) -> dict:
    with open(os.path.join(corpus_dir, "secret.json")) as f:
        return json.load(f)


def main(argv=None) -> int:
    import argparse
    import shutil
    import tempfile
    p = argparse.ArgumentParser(description="Run the artifact corpus through webtensor.load; print JSON.")
    p.add_argument("outdir", nargs="?")
    p.add_argument("names", nargs="*", help="only these cases")
    p.add_argument("--build", action="store_true", help="build a fresh corpus in a temporary directory first")
    p.add_argument("--details", action="store_true", help="print {name: {outcome, message, seconds, outside}}")
    a = p.parse_args(argv)
    os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")
    tmp = None
    if a.build:
        sys.path.insert(0, HERE)
        from make_corpus import make_corpus
        if a.outdir:
            a.names.insert(0, a.outdir)
        tmp = a.outdir = tempfile.mkdtemp(prefix="webtensor-corpus-py-")
        make_corpus(a.outdir)
    elif not a.outdir:
        p.error("OUTDIR or --build is required")
    try:
        out = {}
        for entry in load_index(a.outdir):
            if a.names and entry["name"] not in a.names:
                continue
            r = run_case(entry, a.outdir)
            out[entry["name"]] = r if a.details else r["outcome"]
        json.dump(out, sys.stdout, indent=1 if a.details else None)
        sys.stdout.write("\n")
        sys.stdout.flush()
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    os._exit(0)     # do not wait for a hung case's thread


if __name__ == "__main__":
    main()
