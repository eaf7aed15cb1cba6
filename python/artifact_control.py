"""Loading and running signatures with control flow (``docs/artifact.md``, "Control flow"): the
checks the schema cannot state, the pieces handed to the backend loaders as internal signatures,
and the host-side interpreter of the programs (as ``core/runtime/control.py`` runs traced graphs).

A hostile manifest must not hang or crash the loader: every value is defined once and used only
after its definition inside its own program (so pieces cannot feed themselves: no cycles); every
program but the signature's is referenced exactly once and nests at most :data:`MAX_DEPTH` deep
(programs form a tree); a loop's ``maximum_iterations`` is at most :data:`MAX_ITERATIONS`, and a run
stops with :class:`ArtifactError` after that many loop iterations in all (the cap of a loop
exported without ``maximum_iterations``). Values are checked against what binds them (dtype and
shape), so the backends receive inputs of exactly the sizes their sections declare.
"""
from __future__ import annotations

import json
from math import prod

from .core.runtime.artifacts import ArtifactError

MAX_ITERATIONS = 1 << 20        # loop iterations per run (all loops together)
MAX_DEPTH = 32                  # programs nested in programs
PIECE = "{}#{}"                 # the name a piece of a signature runs under on the backend


def _key(spec) -> tuple:
    return spec["dtype"], tuple(spec["shape"])


def _show(spec) -> str:
    return f"{spec['dtype']} {list(spec['shape'])}"


def check_control(manifest: dict, fail) -> None:
    """The rules of every ``control`` section the schema cannot state (module docstring)."""
    variables = manifest["variables"]
    for name, sig in manifest["signatures"].items():
        if "control" in sig:
            _Checker(name, sig, variables, manifest["files"], fail).run()


class _Checker:
    def __init__(self, name, sig, variables, files, fail):
        self.sig, self.c, self.variables, self.files = sig, sig["control"], variables, files
        self.what = f"manifest.json: signature '{name}' control"
        self.fail = fail
        self.values = self.c["values"]
        self.defined: set = set()
        self.programs_seen: set = set()
        self.pieces_seen: set = set()

    def error(self, msg):
        self.fail(f"{self.what}: {msg}")

    def spec(self, i) -> dict:
        if i >= len(self.values):
            self.error(f"value {i} does not exist ({len(self.values)} values)")
        return self.values[i]

    def specs(self, ids) -> list:
        return [_key(self.spec(i)) for i in ids]

    def run(self):
        c, sig = self.c, self.sig
        if "wasm" in sig or "webgpu" in sig:
            self.error('a signature with control flow has its code in its pieces, not "wasm"/"webgpu" sections')
        for i, v in enumerate(self.values):
            if 4 * prod(v["shape"]) > 1 << 32:
                self.error(f"values[{i}]: shape {v['shape']} needs more than 4 GiB")
        for k, p in enumerate(c["pieces"]):
            for key in ("reads", "writes"):
                if not all(i < len(self.variables) for i in p.get(key, [])):
                    self.error(f'pieces[{k}]: "{key}" must be indices into "variables"')
            if "wasm" in p and "module.wasm" not in self.files:
                self.error(f'pieces[{k}] wasm needs module.wasm, which "files" does not list')
            for kern in p.get("webgpu", {}).get("kernels", []):
                if kern["wgsl"] not in self.files:
                    self.error(f'pieces[{k}] webgpu names {json.dumps(kern["wgsl"])}, which "files" does not list')
        top = c["programs"][0]
        if self.specs(top["inputs"]) != [_key(s) for s in sig["inputs"]]:
            self.error("programs[0].inputs must be values of the signature's inputs' dtypes and shapes")
        outs = self.program(0, 1)
        if outs != [_key(s) for s in sig["outputs"]]:
            self.error("programs[0].outputs must be values of the signature's outputs' dtypes and shapes")
        for var, v in c.get("updates", []):
            if var >= len(self.variables):
                self.error(f"updates: there is no variable {var}")
            if v not in self.defined or self.specs([v]) != [_key(self.variables[var])]:
                self.error(f"updates: value {v} is not a value of the program of variable {var}'s dtype and shape")

    def program(self, p: int, depth: int, bound: list | None = None) -> list:
        """Check program ``p`` (its inputs bound to values of ``bound``'s specs); returns its outputs' specs."""
        if p >= len(self.c["programs"]):
            self.error(f"program {p} does not exist ({len(self.c['programs'])} programs)")
        if p in self.programs_seen:
            self.error(f"program {p} is used twice (programs form a tree: each is run by one step)")
        if depth > MAX_DEPTH:
            self.error(f"programs nest more than {MAX_DEPTH} deep")
        self.programs_seen.add(p)
        prog, at = self.c["programs"][p], f"programs[{p}]"
        if bound is not None and self.specs(prog["inputs"]) != bound:
            self.error(f"{at}.inputs: {len(prog['inputs'])} values that do not match the {len(bound)} values bound "
                       "to them (dtypes and shapes)")
        scope: set = set()

        def define(ids):
            for i in ids:
                self.spec(i)
                if i in self.defined:
                    self.error(f"{at}: value {i} is defined twice")
                self.defined.add(i)
                scope.add(i)

        def use(ids) -> list:
            for i in ids:
                if i not in scope:
                    self.error(f"{at}: value {i} is used before it is defined in this program")
            return self.specs(ids)
        define(prog["inputs"])
        for j, step in enumerate(prog["steps"]):
            (kind, s), = step.items()
            where = f"{at}.steps[{j}]"
            if kind == "piece":
                if s >= len(self.c["pieces"]) or s in self.pieces_seen:
                    self.error(f"{where}: piece {s} " + ("is run twice" if s in self.pieces_seen else "does not exist"))
                self.pieces_seen.add(s)
                piece = self.c["pieces"][s]
                use(piece["inputs"])
                define(piece["outputs"])
            elif kind == "cond":
                if use([s["pred"]]) != [("bool", ())]:
                    self.error(f"{where}: the predicate must be a bool scalar")
                ops = use(s["operands"])
                res = [self.program(b, depth + 1, ops) for b in s["branches"]]
                define(s["outputs"])
                if not res[0] == res[1] == self.specs(s["outputs"]):
                    self.error(f"{where}: both branches must return values of the outputs' dtypes and shapes")
            else:
                self.loop(s, where, depth, use, define)
        return use(prog["outputs"])

    def loop(self, s, where, depth, use, define):
        vs, seqs, ops = use(s["vars"]), use(s["seqs"]), use(s["operands"])
        limit = s.get("maximum_iterations")
        if limit is not None and limit > MAX_ITERATIONS:
            self.error(f"{where}: maximum_iterations {limit} is over this loader's cap of {MAX_ITERATIONS}")
        if seqs:
            rows = {shape[0] if shape else None for _, shape in seqs}
            if None in rows or len(rows) != 1 or limit is None or limit > min(rows):
                self.error(f"{where}: sequences need one first dimension of at least maximum_iterations")
        if "cond" in s and self.program(s["cond"], depth + 1, vs + ops) != [("bool", ())]:
            self.error(f"{where}: the condition must return one bool scalar")
        outs = self.program(s["body"], depth + 1, vs + [(d, shape[1:]) for d, shape in seqs] + ops)
        k = len(vs)
        ys = outs[k:]
        if outs[:k] != vs or any(shape[:1] != (1,) for _, shape in ys):
            self.error(f"{where}: the body must return the loop variables' dtypes and shapes, then [1, ...] rows")
        if ys and limit is None:
            self.error(f"{where}: stacked per-iteration values need maximum_iterations")
        if s.get("length") and limit != self.sig.get("length", {}).get("maximum"):
            self.error(f'{where}: a loop over the length needs a "length" section whose maximum is its maximum_iterations')
        define(s["outputs"])
        if self.specs(s["outputs"]) != vs + [(d, (limit,) + shape[1:]) for d, shape in ys]:
            self.error(f"{where}: the outputs must be the loop variables, then the rows stacked [maximum_iterations, ...]")


def expand(manifest: dict, fail) -> dict:
    """The manifest the backend loaders read: each signature with control flow replaced by its pieces,
    internal signatures named ``<signature>#<k>`` whose inputs and outputs are named ``v<value id>``."""
    sigs = {}
    for name, sig in manifest["signatures"].items():
        if "control" not in sig:
            sigs[name] = sig
            continue
        c = sig["control"]
        spec = lambda i: {"name": f"v{i}", **c["values"][i]}
        for k, p in enumerate(c["pieces"]):
            piece = PIECE.format(name, k)
            if piece in manifest["signatures"]:
                fail(f"manifest.json: signature '{piece}' has the name of piece {k} of signature '{name}'")
            sigs[piece] = {"inputs": [spec(i) for i in p["inputs"]], "outputs": [spec(i) for i in p["outputs"]],
                           **{key: p[key] for key in ("reads", "writes", "wasm", "webgpu") if key in p}}
    return {**manifest, "signatures": sigs}


def _truth(data: bytes) -> bool:
    return any(data[:4])            # a bool is stored as an int32 0/1


def run_control(name: str, control: dict, backend, inputs: list, length: int | None = None) -> list:
    """Run signature ``name``'s programs on ``backend`` (a checked artifact's loader, holding its lock):
    ``inputs`` and the result are storage bytes; the updates are written to the variables. ``length``:
    a signature with a ``length`` section, the run's length (its loops marked ``length`` run at most
    that many iterations; docs/artifact.md, "Symbolic length")."""
    env: dict = {}
    budget = [MAX_ITERATIONS]
    programs, pieces = control["programs"], control["pieces"]

    def program(p: int, args: list) -> list:
        prog = programs[p]
        env.update(zip(prog["inputs"], args))
        for step in prog["steps"]:
            (kind, s), = step.items()
            if kind == "piece":
                piece = pieces[s]
                env.update(zip(piece["outputs"], backend.run(PIECE.format(name, s), [env[i] for i in piece["inputs"]])))
            elif kind == "cond":
                env.update(zip(s["outputs"], program(s["branches"][_truth(env[s["pred"]])],
                                                     [env[i] for i in s["operands"]])))
            else:
                env.update(zip(s["outputs"], loop(s)))
        return [env[i] for i in prog["outputs"]]

    def loop(s) -> list:
        vs, ops = [env[i] for i in s["vars"]], [env[i] for i in s["operands"]]
        seqs = [env[i] for i in s["seqs"]]
        limit, cond = s.get("maximum_iterations"), s.get("cond")
        rows = control["values"][s["seqs"][0]]["shape"][0] if seqs else 0
        steps = length if s.get("length") else None     # the loop steps over the length: its first rows
        end = rows if steps is None else steps
        limit = limit if steps is None else min(limit, steps)
        test = (lambda vs: True) if cond is None else (lambda vs: _truth(program(cond, vs + ops)[0]))
        k, ys, i = len(vs), [], 0
        go = limit != 0 and test(vs)
        while go and (limit is None or i < limit):
            budget[0] -= 1
            if budget[0] < 0:
                raise ArtifactError(f"webtensor: signature '{name}': its loops ran more than {MAX_ITERATIONS} "
                                    "iterations in one run (this loader's cap)")
            t = end - 1 - i if s["reverse"] else i
            at = [q[t * (len(q) // rows):(t + 1) * (len(q) // rows)] for q in seqs]
            outs = program(s["body"], vs + at + ops)
            vs = outs[:k]
            ys.append(outs[k:])
            i += 1
            go = test(vs)
        stacked = []
        for m, out in enumerate(s["outputs"][k:]):
            parts = [y[m] for y in ys]
            shape = control["values"][out]["shape"]
            size = 4 * prod(shape[1:])
            parts += [bytes(size)] * (limit - len(parts))
            if s["reverse"]:
                parts.reverse()
            parts += [bytes(size)] * (shape[0] - limit)     # a loop over the length: rows past it
            stacked.append(b"".join(parts))
        return vs + stacked

    outs = program(0, list(inputs))
    for var, v in control.get("updates", []):
        backend.write_variable(var, env[v])
    return outs
