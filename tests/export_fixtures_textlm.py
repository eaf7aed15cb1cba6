"""The text job's artifact (``webtensor.textlm.export_lm``) for the JS runtime's test
(``js/test/exported_textlm.test.js``), with what Python computes from it.

    python3 tests/export_fixtures_textlm.py OUTDIR
        OUTDIR/lm/: the character LSTM (``textlm.build_model``, LSTM UNITS, seeded weights, trained
            for STEPS Adam steps on synthetic text so that greedy decoding says something) with its
            three signatures: predict (int32 ids (EXPORT_BATCH, length), any length up to MAX_LEN + 1,
            rows 0-padded to the batch's length), generate and sample (one while_loop each);
            vocabulary.json beside;
        OUTDIR/expected.json: {"ids": [flat batches], "lengths": each batch's row lengths, "predict":
            [per batch, per row: the flat logits of its first length steps (the padded ones are not read)],
            "short": the second batch's longest row (its ids cut to that length give the same logits),
            "prompts": [flat prompts], "generate": [ids per prompt], "temperature", "sample": [ids of
            the first SAMPLES calls of sample on prompts[0], from the artifact as written]}, all from
            Python-wasmtime running the artifact.

Checked here, on a wasm device without relaxed-SIMD FMA (as export emits by default): the artifact's
predict on 0-padded rows of several lengths equals the model run on each unpadded row (masking: the
padded steps change nothing; within float32 rounding of different matmul shapes), the same ids cut
to a shorter length give the same logits bit for bit (one artifact for every length: docs/artifact.md
"Symbolic length"), and generate equals the same while_loop traced in Python, bit for bit.
"""
from __future__ import annotations

import json
import os
import string
import sys

import numpy as np

UNITS = 32
STEPS = 150
LENGTHS = ((1, 7, 40, 256), (3, 19, 64, 129))     # characters + boundary per row, two predict batches
PROMPTS = ("", "The ", "You ")         # "You ": the README snippet's prompt
SAMPLES = 2
TEMPERATURE = 0.8


def main(out: str) -> None:
    import webtensor as wt
    from webtensor import textlm
    from webtensor.wasm.runtime import WasmDevice
    wt.register_device("wasm_exact", lambda: WasmDevice(fma=False))
    wt.get_device("wasm_exact").name = "wasm_exact"
    vocab = textlm.Vocabulary(sorted(string.ascii_letters + string.digits + " .,!?'\n"))
    text = [vocab.encode(s) for s in ("You will have a fine day.", "The cat sat on the mat.",
                                      "You will meet a tall, dark stranger.", "The end is near!")] * 4     # 16: one batch
    rng = np.random.default_rng(15)
    batches = []
    for lengths in LENGTHS:
        ids = np.zeros((textlm.EXPORT_BATCH, textlm.MAX_LEN + 1), np.int32)
        for r, n in enumerate(lengths):
            ids[r, 0] = textlm.BOUNDARY
            ids[r, 1:n] = rng.integers(2, len(vocab), n - 1)
        batches.append(ids)
    prompts = np.array([textlm.prompt_ids(vocab, p) for p in PROMPTS], np.int32)
    with wt.device("wasm_exact"):
        wt.set_seed(15)
        model = textlm.build_model(len(vocab), UNITS)
        textlm.train(model, text, [], STEPS, 15, verbose=False)     # one batch per epoch
        path = os.path.join(out, "lm")
        manifest = textlm.export_lm(model, vocab, path)
        loops = {s: sum("while" in step for p in manifest["signatures"][s]["control"]["programs"] for step in p["steps"])
                 for s in ("predict", "generate", "sample")}
        assert loops == {"predict": 1, "generate": 1, "sample": 1}, f"the loops are not loops of the artifact: {loops}"
        art = wt.load(path, backend="wasm")
        predict = [art.run("predict", ids)["output_0"] for ids in batches]
        for ids, got, lengths in zip(batches, predict, LENGTHS):
            for r, n in enumerate(lengths):
                alone = model(wt.tensor(ids[r:r + 1, :n])).numpy()[0]
                err = float(np.abs(got[r, :n] - alone).max())
                assert err < 1e-5, f"predict on a row of {n} padded to {ids.shape[1]}: max |difference| {err}"
        short = max(LENGTHS[1])
        cut = art.run("predict", batches[1][:, :short])["output_0"]
        assert cut.shape[1] == short and np.array_equal(cut, predict[1][:, :short]), \
            "predict at a shorter length differs from the same steps at the maximum"
        greedy = wt.function(textlm.generator_fn(model, True))
        generate = []
        for p in prompts:
            got = art.run("generate", p)["output_0"]
            assert np.array_equal(got, greedy(wt.tensor(p)).numpy()), "generate differs from the traced while_loop"
            generate.append(got.tolist())
        sample = [art.run("sample", prompts[0], np.float32(TEMPERATURE))["output_0"].tolist() for _ in range(SAMPLES)]
        assert sample[0] != sample[1], "two calls of sample drew the same characters"
    valid = [[p[r, :n].ravel().tolist() for r, n in enumerate(lengths)] for p, lengths in zip(predict, LENGTHS)]
    expected = {"ids": [b.ravel().tolist() for b in batches], "lengths": LENGTHS, "predict": valid, "short": short,
                "prompts": prompts.tolist(), "generate": generate, "temperature": TEMPERATURE, "sample": sample,
                "texts": [vocab.decode(g) for g in generate]}
    with open(os.path.join(out, "expected.json"), "w") as fh:
        json.dump(expected, fh)


if __name__ == "__main__":
    main(sys.argv[1])
