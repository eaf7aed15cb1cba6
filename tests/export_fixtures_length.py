"""Artifacts with a symbolic length (docs/artifact.md "Symbolic length") for the Python and Node
tests: ``python3 tests/export_fixtures_length.py OUTDIR`` writes

- ``OUTDIR/seq``: token ids ``(2, length)`` -> Embedding(40, 8) -> LSTM(16, every step) -> Dense(5)
  per step (a language model's logits, ``(2, length, 5)``) and GRU(12) over the LSTM's steps ->
  Dense(3) (a classifier, ``(2, 3)``), exported once with ``max_length=12``;
- ``OUTDIR/rev``: a reverse ``scan`` (suffix sums of the embedded steps, ``(length, 2, 8)``) and
  its final sum, the same way;
- ``OUTDIR/bi``: a sentence classifier: Embedding(40, 6, mask_zero; id 0 pads inside the length)
  -> Bidirectional(GRU(6)) -> Dense(3), an LSTM(4, go_backwards) encoding, ``(2, 3)``, ``(2, 4)``, and
  a tagger: Bidirectional(GRU(5), every step) -> Dense(3) per step, ``(2, length, 3)``
  (all three with WebAssembly and WGSL code);
- ``OUTDIR/<kind>_<L>``: the same functions exported at the fixed length ``L`` (``LENGTHS``);
- ``OUTDIR/expected.json``: ``{"ids": {L: ids}, "<kind>": {L: {output: values}}}``, the fixed-length
  artifacts' outputs (Python wasm loader): one artifact at any length must give the same bits.
"""
from __future__ import annotations

import json
import os
import sys

import numpy as np

BATCH, MAXIMUM, VOCAB = 2, 12, 40
LENGTHS = (1, 5, 12)


def functions():
    """``{kind: function of int32 ids (BATCH, length)}`` with fixed weights."""
    import webtensor as wt
    nn = wt.nn
    wt.set_seed(1)
    emb, lstm, gru = nn.Embedding(VOCAB, 8), nn.LSTM(16, return_sequences=True), nn.GRU(12)
    lm, cls = nn.Dense(5), nn.Dense(3)

    def seq(ids):
        h = lstm(emb(ids))
        return lm(h), cls(gru(h))

    emb2 = nn.Embedding(VOCAB, 8)

    def rev(ids):
        steps = wt.transpose(emb2(ids), (1, 0, 2))
        sums = wt.scan(lambda a, x: a + x, steps, wt.zeros((BATCH, 8)), reverse=True)
        return sums, wt.tanh(sums[0])

    emb3, bi, back, head = nn.Embedding(VOCAB, 6, mask_zero=True), nn.Bidirectional(nn.GRU(6)), \
        nn.LSTM(4, go_backwards=True), nn.Dense(3)
    tagger, tags = nn.Bidirectional(nn.GRU(5, return_sequences=True)), nn.Dense(3)

    def bidi(ids):
        e = emb3(ids)
        return head(bi(e)), back(e), tags(tagger(e))
    return {"seq": seq, "rev": rev, "bi": bidi}


def ids(length: int) -> np.ndarray:
    """Token ids ``(BATCH, length)``; the second row ends with ``length // 3`` padding ids (0)."""
    x = np.random.default_rng(length).integers(1, VOCAB, (BATCH, length)).astype(np.int32)
    x[1, length - length // 3:] = 0
    return x


def main(out: str, backends=("wasm", "webgpu")) -> None:
    import webtensor as wt
    expected = {"ids": {str(n): ids(n).reshape(-1).tolist() for n in LENGTHS}, "maximum": MAXIMUM}
    for kind, fn in functions().items():
        f = wt.function(fn)
        wt.export(f, path=os.path.join(out, kind), input_signature=[wt.TensorSpec((BATCH, None), "int32")],
                  max_length=MAXIMUM, backends=backends)
        expected[kind] = {}
        for n in LENGTHS:
            path = os.path.join(out, f"{kind}_{n}")
            wt.export(f, (wt.tensor(ids(n)),), path=path, backends=("wasm",))
            outs = wt.load(path, backend="wasm").run("predict", ids(n))
            expected[kind][str(n)] = {k: v.reshape(-1).tolist() for k, v in outs.items()}
    with open(os.path.join(out, "expected.json"), "w") as fh:
        json.dump(expected, fh)


if __name__ == "__main__":
    main(sys.argv[1])
