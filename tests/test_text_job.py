"""The second main job (``python -m webtensor text``, ``webtensor.textlm``): its corpus reader, its
length-bucketed masked batches, its loss against numpy, its while_loop generation against the model
run again on each growing prefix, and a tiny run of the command (CI: a few steps, not the training)."""
import math
import random
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import webtensor as wt
from webtensor import textlm

CORPUS = all(os.path.exists(os.path.join(textlm.FORTUNES_DIR, f)) for f in textlm.FORTUNE_FILES)
needs_corpus = pytest.mark.skipif(not CORPUS, reason="Debian's fortunes-min is not installed (make setup installs it)")


def write_corpus(tmp_path, cookies: dict) -> str:
    for name in textlm.FORTUNE_FILES:
        (tmp_path / name).write_text("%\n".join(c + "\n" for c in cookies.get(name, ["x"])), encoding="utf-8")
    return str(tmp_path)


def test_load_fortunes_cuts_cookies_and_cleans_them(tmp_path):
    long = "\n".join(f"line {k} " + "y" * 10 for k in range(6))          # 6 lines of 17 characters
    path = write_corpus(tmp_path, {"fortunes": ["A\tb", "_\x08u_\x08n", long], "riddles": ["z" * 50]})
    texts = textlm.load_fortunes(path, max_len=40)
    lines = long.split("\n")
    assert texts == ["A    b", "un", "\n".join(lines[0:2]), "\n".join(lines[2:4]), "\n".join(lines[4:6]), "x"]


def test_load_fortunes_names_the_package_when_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="fortunes-min"):
        textlm.load_fortunes(str(tmp_path))


def test_vocabulary_round_trip_and_unknown_character():
    vocab = textlm.Vocabulary("ab c")
    assert len(vocab) == 6 and vocab.encode("cab") == [5, 2, 3]
    assert vocab.decode([5, 2, 3, textlm.BOUNDARY, 2]) == "cab"
    with pytest.raises(KeyError, match="'z' is not in the vocabulary"):
        vocab.encode("z")


def test_batches_shift_targets_and_pad_to_buckets():
    seqs = [[2] * 40, [3] * 5, [4] * 31, [5] * 2]
    batches = textlm.make_batches(seqs, 2)
    shapes = [np.shape(ids) for ids, _, _ in batches]
    assert shapes == [(2, 32), (2, 64)]                 # lengths 2, 5 -> 32 steps; 31, 40 -> 32 + 1 -> 64
    ids, targets, weights = (np.array(a) for a in batches[1])
    assert ids[0, 0] == textlm.BOUNDARY and list(ids[0, 1:32]) == [4] * 31 and not ids[0, 32:].any()
    assert list(targets[0, :32]) == [4] * 31 + [textlm.BOUNDARY] and not targets[0, 32:].any()
    assert weights.sum(axis=1).tolist() == [32, 41]     # every character and the end marker
    order = [np.shape(b[0]) for b in textlm.make_batches(seqs, 2, random.Random(1))]
    assert sorted(order) == sorted(shapes)


def small_lm(device):
    """A 9-character LM with 8 LSTM units on ``device``."""
    with wt.device(device):
        wt.set_seed(3)
        model = textlm.build_model(9, 8)
        model(wt.zeros((1, 4), dtype="int32"))
        # larger weights than the initializers give, so that greedy decoding is not constant
        model.set_weights([w * 4 for w in model.get_weights()])
    return model


def test_masked_loss_equals_numpy_and_ignores_padding():
    small_model = small_lm("reference")
    rng = np.random.default_rng(0)
    seqs = [list(rng.integers(2, 9, n)) for n in (3, 11, 20)]
    ids, targets, weights = (np.array(a) for a in textlm.make_batches(seqs, 3)[0])
    with wt.device("reference"):
        total, count = textlm.masked_nll(small_model, wt.tensor(ids, dtype="int32"), wt.tensor(targets, dtype="int32"),
                                         wt.tensor(weights.astype(np.float32)))
        logits = small_model(wt.tensor(ids, dtype="int32")).numpy().astype(np.float64)
        alone = []
        for r, s in enumerate(seqs):      # each row unpadded: masking makes the padded steps no-ops
            n = len(s) + 1
            alone.append(small_model(wt.tensor(ids[r:r + 1, :n], dtype="int32")).numpy()[0])
            np.testing.assert_allclose(logits[r, :n], alone[-1], rtol=0, atol=1e-5)   # measured 1.3e-6: BLAS order
    logp = logits - logits.max(-1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(-1, keepdims=True))
    want = -(weights * np.take_along_axis(logp, targets[..., None], -1)[..., 0]).sum()
    assert float(count.numpy()) == sum(len(s) + 1 for s in seqs)
    assert abs(float(total.numpy()) - want) <= 1e-5 * abs(want)


@pytest.mark.parametrize("device", ["reference", "wasm"])
def test_greedy_while_loop_equals_the_model_on_each_prefix(device):
    """The while_loop's cell steps give the characters that the whole model, run again on each
    growing prefix, ranks first (until the end marker or the length)."""
    small_model = small_lm(device)
    prompt = [textlm.BOUNDARY, 4, 7] + [0] * 5
    with wt.device(device):
        got = wt.function(textlm.generator_fn(small_model, True, length=10))(wt.tensor(prompt, dtype="int32")).numpy()
        seq, want = prompt[:3], []
        while len(want) < 10:
            nxt = int(np.argmax(small_model(wt.tensor([seq], dtype="int32")).numpy()[0, -1]))
            want.append(nxt)
            if nxt == textlm.BOUNDARY:
                break
            seq.append(nxt)
    assert got.tolist() == want + [0] * (10 - len(want))
    assert len(set(want)) > 1, f"a constant sample does not test much: {want}"


def test_prompt_too_long_raises():
    with pytest.raises(ValueError, match="holds 4 characters; at most 3 fit"):
        textlm.prompt_ids(textlm.Vocabulary("ab"), "abab", length=4)


def test_missing_corpus_exits_2(tmp_path, capsys):
    assert textlm.main(["--corpus", str(tmp_path), "--epochs", "1"]) == 2
    assert "fortunes-min" in capsys.readouterr().err


@needs_corpus
def test_text_job_tiny_run(tmp_path):
    """The README command with two batches per epoch: progress, a finite perplexity below the
    untrained model's (about the vocabulary size), a sample and the artifact."""
    r = subprocess.run([sys.executable, "-m", "webtensor", "text", "--device", "wasm", "--epochs", "2",
                        "--max_steps", "2", "--units", "16", "--export", str(tmp_path / "lm")],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    vocab = int(re.search(r"vocabulary (\d+)\)", r.stdout).group(1))
    ppl = [float(p) for p in re.findall(r"^Epoch \d/2: loss [\d.]+ - val_perplexity ([\d.]+)", r.stdout, re.M)]
    assert len(ppl) == 2 and all(math.isfinite(p) and 1 < p < 1.5 * vocab for p in ppl), r.stdout
    assert re.search(r"^validation perplexity: [\d.]+ \(target <= [\d.]+\) not judged", r.stdout, re.M), r.stdout
    assert (tmp_path / "lm" / "manifest.json").exists() and (tmp_path / "lm" / "vocabulary.json").exists()


@pytest.mark.slow
@needs_corpus
def test_text_job_reaches_its_target():
    """The default run (``make text``): the validation perplexity target (a few minutes on one core)."""
    r = subprocess.run([sys.executable, "-m", "webtensor", "text"], capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"^validation perplexity: [\d.]+ \(target <= [\d.]+\) OK", r.stdout, re.M), r.stdout
