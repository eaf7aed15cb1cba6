"""ONNX's conformance suite (``onnx.backend.test.case.node.collect_testcases()``) on webtensor devices.

Every case whose model declares ai.onnx opset <= 21, uses only the ai.onnx domain and whose inputs
and outputs are float32/float16/int32/int64/bool tensors is *eligible*; it is imported with
``webtensor.onnx.load`` (inputs that a node needs at import, such as a Reshape's shape, are bound as
``constants``), run traced (``webtensor.function``) and compared with the case's expected outputs
(the case's own rtol/atol, at least 1e-3/1e-5 for float16).

    python tests/onnx/conformance.py --write          # run on reference, wasm, webgpu; write docs/onnx.md
    python tests/onnx/conformance.py --devices reference --only relu

``tests/onnx/test_conformance.py`` runs it and holds the pass counts recorded in ``RECORDED``.
"""
from __future__ import annotations

import argparse
import collections
import os
import sys
import time
import warnings

import numpy as np

ELIGIBLE_TYPES = {1: "float32", 10: "float16", 6: "int32", 7: "int64", 9: "bool"}
MAX_OPSET = 21


def _opset(model):
    return max([o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] or [0])


def cases():
    """(case, exclusion reason or None) for every case of the suite, sorted by name."""
    from onnx.backend.test.case.node import collect_testcases
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        all_cases = collect_testcases()
    out = []
    for c in sorted(all_cases, key=lambda c: c.name):
        out.append((c, exclusion(c)))
    return out


def exclusion(c) -> str | None:
    m = c.model
    if m is None:
        return "no model"
    if _opset(m) > MAX_OPSET:
        return f"opset {_opset(m)} > {MAX_OPSET}"
    doms = {o.domain for o in m.opset_import} - {"", "ai.onnx"}
    if doms:
        return f"domain {sorted(doms)[0]}"
    for vi in list(m.graph.input) + list(m.graph.output):
        if not vi.type.HasField("tensor_type"):
            return f"{vi.name}: not a tensor"
        et = vi.type.tensor_type.elem_type
        if et not in ELIGIBLE_TYPES:
            import onnx
            return f"{vi.name}: element type {onnx.TensorProto.DataType.Name(et)}"
    return None


def _inputs(c):
    data = c.data_sets[0] if c.data_sets else ([], [])
    return list(data[0]), list(data[1])


def run_case(c, device: str, traced: bool = True) -> str | None:
    """None if the case passes on ``device`` (run in a ``webtensor.function``, or eagerly), else why not
    (one line)."""
    import webtensor as wt
    import webtensor.onnx as wonnx
    from webtensor.onnx.ops import DataDependentError
    ins, expected = _inputs(c)
    names = [vi.name for vi in c.model.graph.input if vi.name not in {t.name for t in c.model.graph.initializer}]
    feeds = dict(zip(names, ins))
    constants = {}
    try:
        with wt.device(device):
            for _ in range(len(names) + 1):
                try:
                    model = wonnx.load(c.model, constants=constants)
                    break
                except DataDependentError as e:
                    # bind the input the node needs; a value computed from inputs: bind the integer inputs
                    if e.input_name in feeds and e.input_name not in constants:
                        constants[e.input_name] = feeds[e.input_name]
                    else:
                        ints = {n: v for n, v in feeds.items() if np.asarray(v).dtype.kind in "iu"}
                        if not set(ints) - set(constants):
                            raise
                        constants.update(ints)
            if constants and not model.input_names:
                return "every input is needed at import (the graph folds to constants: not counted)"
            args = [np.asarray(feeds[n]) for n in model.input_names]
            args = [wt.tensor(a, dtype=wt.int32 if a.dtype == np.int64 else None) for a in args]
            fn = wt.function(lambda *xs: model(list(xs))) if traced else (lambda *xs: model(list(xs)))
            out = fn(*args)
            outs = list(out) if isinstance(out, tuple) else [out]
            got = [o.numpy() for o in outs]
    except NotImplementedError as e:
        return "not implemented: " + _line(e)
    except Exception as e:
        return f"{type(e).__name__}: {_line(e)}"
    if len(got) != len(expected):
        return f"{len(got)} outputs, expected {len(expected)}"
    for k, (g, e) in enumerate(zip(got, expected)):
        e = np.asarray(e)
        if g.shape != e.shape:
            return f"output {k}: shape {g.shape}, expected {e.shape}"
        if e.dtype.kind == "f":
            rtol, atol = c.rtol, c.atol
            if e.dtype == np.float16 or g.dtype == np.float16:
                rtol, atol = max(rtol, 1e-3), max(atol, 1e-3)
            g64, e64 = g.astype(np.float64), e.astype(np.float64)
            same_nan = np.isnan(g64) == np.isnan(e64)
            close = np.isclose(g64, e64, rtol=rtol, atol=atol, equal_nan=True)
            if not (same_nan.all() and close.all()):
                bad = np.argmax(~close.reshape(-1))
                return (f"output {k}: max abs error {np.nanmax(np.abs(g64 - e64)):.3g} (e.g. got "
                        f"{g64.reshape(-1)[bad]:.6g}, expected {e64.reshape(-1)[bad]:.6g})")
        elif not np.array_equal(g.astype(np.int64) if e.dtype.kind in "iu" else g, e):
            return f"output {k}: values differ"
    return None


def _line(e) -> str:
    s = str(e).splitlines()[0] if str(e) else type(e).__name__
    return s[:200]


def run(devices, only=None, progress=False, subset=None):
    """{device: {case name: reason or None}} for the eligible cases, and {name: exclusion reason}."""
    results = {d: {} for d in devices}
    excluded = {}
    todo = []
    for c, why in cases():
        if only and not any(o in c.name for o in only):
            continue
        if why:
            excluded[c.name] = why
        else:
            todo.append(c)
    for d in devices:
        sel = todo if subset is None or d not in subset else [c for c in todo if subset[d](c.name)]
        t0 = time.time()
        for i, c in enumerate(sel):
            results[d][c.name] = run_case(c, d)
            if progress:
                print(f"\r{d}: {i + 1}/{len(sel)} {c.name[:50]:50s}", end="", file=sys.stderr, flush=True)
        if progress:
            print(f"\n{d}: {time.time() - t0:.0f} s", file=sys.stderr)
    return results, excluded, todo


def write_doc(path, results, excluded, todo):
    import onnx
    lines = ["# ONNX conformance", "",
             "Generated by `python tests/onnx/conformance.py --write`: ONNX's own node test cases "
             f"(`onnx.backend.test.case.node.collect_testcases()`, onnx {onnx.__version__}) imported with "
             "`webtensor.onnx.load` and run traced on each device. A case is eligible when its model declares "
             f"ai.onnx opset <= {MAX_OPSET}, uses only the ai.onnx domain and its inputs and outputs are "
             "float32, float16, int32, int64 or bool tensors. Inputs that a node needs at import (a "
             "Reshape's shape, a Pad's pads: webtensor's shapes are static) are bound with `load(..., "
             "constants=...)`; a case whose graph then folds to constants entirely is not counted as "
             "passing. Outputs are compared with the case's own rtol/atol (at least 1e-3 for float16); "
             "int64 outputs come back as int32 and are compared by value.", "",
             "| device | passed | eligible | pass rate |", "|---|---|---|---|"]
    for d, res in results.items():
        ok = sum(r is None for r in res.values())
        lines.append(f"| {d} | {ok} | {len(res)} | {100.0 * ok / max(len(res), 1):.1f} % |")
    from webtensor.onnx.ops import CONVERTERS
    ops = sorted(set(CONVERTERS) | {"Constant", "If"})
    lines += ["", f"Eligible cases: {len(todo)}; excluded: {len(excluded)}.", "",
              f"## Op types with a converter ({len(ops)})", "",
              "One table, `CONVERTERS` in `python/onnx/ops.py` (`Constant` and `If` are handled by the "
              "importer itself: `If` when its condition is known at import). Some converters call ops that "
              "webtensor gains in other modules (`cumsum`, `gather_nd`, `tensor_scatter_nd_*`, `top_k`, "
              "`floormod`, `einsum`, inverse trigonometric and hyperbolic functions); until then a model "
              "using them raises NotImplementedError naming the missing op. Any node whose inputs are all "
              "known at import is computed there by `onnx.reference`, whatever its type.", "",
              ", ".join(f"`{o}`" for o in ops), "", "## Failing cases", ""]
    names = sorted({n for res in results.values() for n, r in res.items() if r is not None})
    devs = list(results)
    lines += ["| case | " + " | ".join(devs) + " |", "|---|" + "---|" * len(devs)]
    for n in names:
        cells = [(results[d].get(n) or ("passes" if n in results[d] else "not run")).replace("|", "\\|")
                 for d in devs]
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    lines += ["", "## Excluded cases", ""]
    by = collections.defaultdict(list)
    for n, why in excluded.items():
        by[why].append(n)
    for why in sorted(by, key=lambda w: (-len(by[w]), w)):
        lines.append(f"- **{why}** ({len(by[why])}): " + ", ".join(sorted(by[why])))
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", default="reference,wasm,webgpu")
    ap.add_argument("--only", nargs="*", help="run only cases whose name contains one of these")
    ap.add_argument("--write", action="store_true", help="write docs/onnx.md")
    a = ap.parse_args(argv)
    results, excluded, todo = run(a.devices.split(","), a.only, progress=True)
    for d, res in results.items():
        ok = sum(r is None for r in res.values())
        print(f"{d}: {ok}/{len(res)} passed")
        if not a.write:
            for n, r in sorted(res.items()):
                if r is not None:
                    print(f"  {n}: {r}")
    if a.write:
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        write_doc(os.path.join(root, "docs", "onnx.md"), results, excluded, todo)


if __name__ == "__main__":
    main()
