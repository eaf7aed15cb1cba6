"""progress.Progress: plain-line fallback, verbose levels, tqdm path."""

import re

import pytest

from webtensor.progress import Progress, format_metrics


def test_plain_line_per_epoch(capsys):
    p = Progress(45, "Epoch 3/10", verbose=2, use_tqdm=False)
    for _ in range(45):
        p.update(loss=0.5)
    p.close(loss=0.12344, accuracy=0.965)
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    assert re.fullmatch(
        r"Epoch 3/10 — 45/45 steps — loss 0\.1234 — accuracy 0\.9650 — \d+\.\ds\n", out
    ), out


def test_verbose1_without_tqdm_prints_final_line(capsys):
    # captured output is not a terminal: no redraws, just the final line
    p = Progress(4, "Epoch 1/2", verbose=1, use_tqdm=False)
    p.update(2, loss=1.0)
    p.update(2, loss=0.25)
    p.close()
    out = capsys.readouterr().out
    assert out.startswith("Epoch 1/2 — 4/4 steps — loss 0.2500 — ")
    assert out.count("\n") == 1 and "\r" not in out


def test_verbose0_is_silent(capsys):
    p = Progress(10, "Epoch 1/1", verbose=0)
    for _ in range(10):
        p.update(loss=1.0)
    p.close(loss=0.5)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
    assert p.n == 10 and p.metrics == {"loss": 0.5}


def test_context_manager_and_unknown_total(capsys):
    with Progress(None, "", verbose=2, use_tqdm=False) as p:
        p.update(3)
    out = capsys.readouterr().out
    assert out.startswith("3 steps — ")
    p.close()  # idempotent
    assert capsys.readouterr().out == ""


def test_explicit_file():
    import io

    buf = io.StringIO()
    p = Progress(2, "Epoch 1/1", verbose=2, use_tqdm=False, file=buf)
    p.update(2, acc=1)
    p.close()
    assert buf.getvalue().startswith("Epoch 1/1 — 2/2 steps — acc 1.0000 — ")


def test_format_metrics_non_numbers():
    assert format_metrics({"a": 1.5, "b": "x"}) == "a 1.5000 — b x"


def test_bad_verbose():
    with pytest.raises(ValueError):
        Progress(1, verbose=3)


def test_tqdm_bar(capsys):
    pytest.importorskip("tqdm")
    p = Progress(5, "Epoch 1/1", verbose=1)
    assert p._bar is not None
    for _ in range(5):
        p.update(loss=0.5)
    p.close(loss=0.25)
    err = capsys.readouterr().err
    assert "Epoch 1/1" in err and "5/5" in err and "loss=0.2500" in err


def test_ascii_only_stream_falls_back_to_hyphens():
    import io

    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="ascii")
    p = Progress(1, "Epoch 1/1", verbose=2, use_tqdm=False, file=stream)
    p.update(loss=0.5)
    p.close()
    assert raw.getvalue().decode().startswith("Epoch 1/1 - 1/1 steps - loss 0.5000 - ")
