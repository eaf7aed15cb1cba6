"""The README's ONNX section runs as written, on a small classifier.onnx made here."""
import pathlib
import re

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")

README = pathlib.Path(__file__).resolve().parents[2] / "README.md"


def test_readme_onnx_snippet_runs(tmp_path, monkeypatch):
    from onnx import TensorProto as T, helper, numpy_helper
    text = README.read_text()
    start = text.index("## ONNX models: import, fine-tune, export")
    (block,) = re.findall(r"```python\n(.*?)```", text[start:text.index("\n## ", start + 1)], re.S)
    r = np.random.default_rng(0)
    w, b = r.standard_normal((4, 3)).astype(np.float32), np.zeros(3, np.float32)
    g = helper.make_graph([helper.make_node("Gemm", ["x", "w", "b"], ["logits"])], "classifier",
                          [helper.make_tensor_value_info("x", T.FLOAT, ["N", 4])],
                          [helper.make_tensor_value_info("logits", T.FLOAT, ["N", 3])],
                          [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "classifier.onnx"))
    monkeypatch.chdir(tmp_path)
    env: dict = {}
    exec(compile(block, "README onnx", "exec"), env)
    np.testing.assert_allclose(env["logits"].numpy(), env["x"] @ w + b, rtol=1e-5, atol=1e-6)
    assert (tmp_path / "classifier_artifact" / "manifest.json").exists()
    assert env["model"].history.history["loss"][-1] < env["model"].history.history["loss"][0]
