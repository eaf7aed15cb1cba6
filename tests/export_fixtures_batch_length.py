"""Artifacts with a symbolic batch AND a symbolic length (docs/artifact.md "Symbolic batch and
length") for the Python and Node tests: ``python3 tests/export_fixtures_batch_length.py OUTDIR`` writes

- ``OUTDIR/<kind>``: each function of ``functions()`` exported once with
  ``input_signature=[TensorSpec((None, None), "int32")]``, chunks of ``CHUNK`` rows, ``max_batch=MAX_BATCH``
  and ``max_length=MAXIMUM`` (WebAssembly and WGSL code): ``lm``, the text job's model
  (``webtensor.textlm.build_model``: Embedding(mask_zero) -> LSTM(every step) -> Dense, smaller);
  ``seq`` and ``bi`` of ``export_fixtures_length`` (LSTM + GRU; Bidirectional GRUs and a
  go_backwards LSTM);
- ``OUTDIR/model``: ``Model.export`` of an Embedding(mask_zero) + LSTM + Dense classifier of ids
  ``(batch, 6)`` at ``CHUNK`` rows: its predict takes any batch (a loop carrying rows; no length);
- ``OUTDIR/expected.json``: ``{"pairs": [[n, L], ...], "ids": {"n,L": flat ids}, "<kind>": {"n,L":
  {output: flat values}}, "model": {"n": {"ids", "output_0"}}}``, the outputs of artifacts exported at
  each fixed ``(n, L)`` (and each batch ``n`` for ``model``; Python's wasm loader): the one artifact at
  every pair must give the same bits.
"""
from __future__ import annotations

import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export_fixtures_length as fl  # noqa: E402

CHUNK, MAX_BATCH, MAXIMUM, VOCAB = 3, 9, 12, fl.VOCAB
PAIRS = ((1, 1), (2, 5), (3, 12), (5, 7), (7, 3), (9, 12))     # (batch, length): a part chunk, whole ones, several
MODEL_BATCHES = (1, 3, 7)


def functions() -> dict:
    """``{kind: function of int32 ids (batch, length)}`` with fixed weights."""
    import webtensor as wt
    from webtensor import textlm
    fns = fl.functions()
    wt.set_seed(2)
    lm = textlm.build_model(VOCAB, units=16)
    return {"lm": lambda ids: lm(ids), "seq": fns["seq"], "bi": fns["bi"]}


def ids(n: int, length: int) -> np.ndarray:
    """Token ids ``(n, length)``; odd rows end with ``length // 3`` padding ids (0)."""
    x = np.random.default_rng(100 * n + length).integers(1, VOCAB, (n, length)).astype(np.int32)
    x[1::2, length - length // 3:] = 0
    return x


def main(out: str, backends=("wasm", "webgpu")) -> None:
    import webtensor as wt
    expected = {"pairs": [list(p) for p in PAIRS], "chunk": CHUNK, "max_batch": MAX_BATCH, "maximum": MAXIMUM,
                "ids": {f"{n},{L}": ids(n, L).reshape(-1).tolist() for n, L in PAIRS}}
    for kind, fn in functions().items():
        f = wt.function(fn)
        wt.export(f, path=os.path.join(out, kind), input_signature=[wt.TensorSpec((None, None), "int32")],
                  batch_size=CHUNK, max_batch=MAX_BATCH, max_length=MAXIMUM, backends=backends)
        expected[kind] = {}
        for n, L in PAIRS:
            path = os.path.join(out, f"{kind}_{n}_{L}")
            wt.export(f, (wt.tensor(ids(n, L)),), path=path, backends=("wasm",))
            outs = wt.load(path, backend="wasm").run("predict", ids(n, L))
            expected[kind][f"{n},{L}"] = {k: v.reshape(-1).tolist() for k, v in outs.items()}
    wt.set_seed(4)
    nn = wt.nn
    m = nn.Sequential([nn.Input((6,), dtype="int32"), nn.Embedding(VOCAB, 4, mask_zero=True), nn.LSTM(5), nn.Dense(2)])
    m(wt.zeros((CHUNK, 6), "int32"))
    m.export(os.path.join(out, "model"), batch_size=CHUNK, backends=backends)
    expected["model"] = {}
    for n in MODEL_BATCHES:
        x = ids(n, 6)
        m.export(os.path.join(out, f"model_{n}"), batch_size=n, symbolic_batch=False, backends=("wasm",))
        y = wt.load(os.path.join(out, f"model_{n}"), backend="wasm").predict(x)
        expected["model"][str(n)] = {"ids": x.reshape(-1).tolist(), "output_0": y.reshape(-1).tolist()}
    with open(os.path.join(out, "expected.json"), "w") as fh:
        json.dump(expected, fh)


if __name__ == "__main__":
    main(sys.argv[1])
