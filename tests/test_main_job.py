"""The main job (``python -m webtensor``): trains an MLP and a CNN on digits and meets the targets,
with the test accuracy the README's table quotes for the device."""
import pathlib
import re
import subprocess
import sys

import pytest

import webtensor.__main__ as main_job

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def readme_accuracy(device: str) -> dict:
    """The README's figures for ``python -m webtensor --device DEVICE``: {"MLP": %, "CNN": %}."""
    m = re.search(rf"^\| `{device}`[^|]*\| ([\d.]+) % \| ([\d.]+) % \|", README.read_text(), re.M)
    assert m, f"the README quotes no test accuracy for --device {device}"
    return {"MLP": float(m.group(1)), "CNN": float(m.group(2))}


def software_adapter() -> bool:
    """Whether wgpu's adapter is a CPU one (llvmpipe), as on the machines that measured the README."""
    import wgpu
    adapter = wgpu.gpu.request_adapter_sync(power_preference="high-performance")
    return adapter is not None and adapter.info.get("adapter_type") == "CPU"


def assert_readme_accuracy(device: str, kind: str, measured: float) -> None:
    quoted = readme_accuracy(device)[kind]
    if device == "webgpu" and not software_adapter():   # another GPU rounds differently: 2 test images
        assert abs(measured - quoted) <= 0.6, f"{kind} on {device}: {measured} %, the README says {quoted} %"
    else:                                                # deterministic
        assert measured == quoted, f"{kind} on {device}: {measured} %, the README says {quoted} %"


@pytest.mark.slow
def test_main_job_reaches_targets():
    """The README command, as CI runs it: default epochs, seed 0, the default device (wasm where
    wasmtime is installed and no hardware GPU, as in CI; reference without wasmtime)."""
    r = subprocess.run([sys.executable, "-m", "webtensor", "--verbose", "2"], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    device = re.search(r"^== MLP on digits .*, device (\w+),", r.stdout, re.M).group(1)
    for kind, target in (("MLP", 95.0), ("CNN", 97.0)):
        m = re.search(rf"^{kind} test accuracy: ([\d.]+) % \(target {target:.0f} %\) OK", r.stdout, re.M)
        assert m, r.stdout
        assert float(m.group(1)) >= target
        assert_readme_accuracy(device, kind, float(m.group(1)))
    epochs = [line for line in r.stdout.splitlines() if line.startswith("Epoch ")]
    assert len(epochs) == main_job.EPOCHS["mlp"] + main_job.EPOCHS["cnn"]
    assert all("val_accuracy" in line for line in epochs)


@pytest.mark.slow
@pytest.mark.parametrize("device", ["reference", "wasm", "webgpu"])
def test_main_job_reaches_targets_on_every_device(device):
    """Issues 3 and 4: the same command with --device reaches the same targets (reference takes
    about a minute, webgpu on the llvmpipe software adapter here about 3)."""
    r = subprocess.run([sys.executable, "-m", "webtensor", "--verbose", "2", "--device", device],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"device {device}," in r.stdout
    for kind, target in (("MLP", 95.0), ("CNN", 97.0)):
        m = re.search(rf"^{kind} test accuracy: ([\d.]+) % \(target {target:.0f} %\) OK", r.stdout, re.M)
        assert m and float(m.group(1)) >= target, r.stdout
        assert_readme_accuracy(device, kind, float(m.group(1)))


def test_missed_target_exits_nonzero(monkeypatch, capsys):
    monkeypatch.setitem(main_job.TARGETS, "mlp", 1.01)  # unreachable
    assert main_job.main(["--model", "mlp", "--epochs", "1", "--verbose", "0"]) == 1
    captured = capsys.readouterr()
    assert "MLP test accuracy" in captured.out and "MISSED" in captured.out
    assert "mlp missed the accuracy target" in captured.err


def test_unavailable_device_exits_2(monkeypatch, capsys):
    import importlib
    devices = importlib.import_module("webtensor.core.runtime.device")

    def no_adapter():
        raise RuntimeError("no WebGPU adapter")
    monkeypatch.setitem(devices._FACTORIES, "webgpu", no_adapter)
    monkeypatch.delitem(devices._INSTANCES, "webgpu", raising=False)
    assert main_job.main(["--device", "webgpu", "--verbose", "0"]) == 2
    assert "no WebGPU adapter" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main_job.main(["--device", "tpu"])
    assert e.value.code == 2


def test_models_have_the_documented_shapes():
    mlp, cnn = main_job.build_model("mlp"), main_job.build_model("cnn")
    assert [tuple(v.shape) for v in mlp.variables] == [(64, 128), (128,), (128, 64), (64,), (64, 10), (10,)]
    assert [tuple(v.shape) for v in cnn.variables] == [(3, 3, 1, 16), (16,), (3, 3, 16, 32), (32,), (128, 64),
                                                       (64,), (64, 10), (10,)]


def test_digits_tensors_match_the_raw_arrays():
    import numpy as np
    import webtensor as wt
    from webtensor.datasets import digits_arrays
    (x_train, y_train), (x_test, y_test) = wt.datasets.digits()
    assert x_train.shape == (1438, 8, 8, 1) and x_test.shape == (359, 8, 8, 1)
    assert x_train.dtype == wt.float32 and y_train.dtype == wt.int32 and y_test.shape == (359,)
    ((ax, ay), (bx, by)), _ = digits_arrays()
    np.testing.assert_array_equal(x_train.numpy().reshape(-1), np.frombuffer(ax, np.float32))
    np.testing.assert_array_equal(y_test.numpy(), np.frombuffer(by, np.int32))
    assert float(x_train.numpy().min()) == 0.0 and float(x_train.numpy().max()) == 1.0
    (x2, _), (x3, _) = wt.datasets.digits(test_fraction=0.5, seed=1)
    assert x2.shape[0] + x3.shape[0] == 1797 and x3.shape[0] == 898
    assert not np.array_equal(x2.numpy()[:5], x_train.numpy()[:5])


def distributed_run(monkeypatch, capsys, argv, strategy_class):
    """Run the main job in this process on the CNN for 2 epochs (targets lowered: 2 epochs reach about
    90 %); returns (its output, the number of steps in each execution the strategy ran)."""
    import webtensor.distribute as D
    monkeypatch.setitem(main_job.TARGETS, "cnn", 0.5)
    executions = []
    run_steps = getattr(D, strategy_class)._run_steps

    def spy(self, per_replica, *args, **kwargs):
        executions.append(len(per_replica[0]))
        return run_steps(self, per_replica, *args, **kwargs)
    monkeypatch.setattr(getattr(D, strategy_class), "_run_steps", spy)
    assert main_job.main(["--model", "cnn", "--epochs", "2", "--verbose", "0", *argv]) == 0
    return capsys.readouterr().out, executions


def printed_accuracy(out: str) -> float:
    m = re.search(r"^CNN test accuracy: ([\d.]+) % \(target 50 %\) OK "
                  r"\[[\d.]+ s, training (\d+) images/s from epoch 2\]", out, re.M)
    assert m, out
    assert int(m.group(2)) > 0
    return float(m.group(1))


def test_main_job_mirrored_runs_steps_per_execution(monkeypatch, capsys):
    """``--distribute mirrored``: 16 steps per hand-off by default (45 steps an epoch at batch 32: 16 +
    16 + 13), ``--steps-per-execution`` sets it; the weights do not depend on it (the same test
    accuracy as one step per hand-off), and the job prints accuracy and throughput."""
    pytest.importorskip("wasmtime")
    out, executions = distributed_run(monkeypatch, capsys, ["--distribute", "mirrored", "--workers", "2"],
                                      "MirroredStrategy")
    assert "MirroredStrategy(devices=['wasm:0', 'wasm:1']), 16 steps per execution" in out
    assert executions == [16, 16, 13] * 2
    default = printed_accuracy(out)
    out, executions = distributed_run(monkeypatch, capsys, ["--distribute", "mirrored", "--steps-per-execution", "1"],
                                      "MirroredStrategy")
    assert executions == [1] * 90 and "steps per execution" not in out
    assert printed_accuracy(out) == default
    _, executions = distributed_run(monkeypatch, capsys, ["--distribute", "mirrored", "--steps-per-execution", "40"],
                                    "MirroredStrategy")
    assert executions == [40, 5] * 2


def test_main_job_ray_runs_steps_per_execution(monkeypatch, capsys):
    """``--distribute ray --workers 2``: two Ray worker actors, 16 steps per hand-off (one Ray call)."""
    pytest.importorskip("wasmtime")
    ray = pytest.importorskip("ray")
    from webtensor.distribute import cluster
    cluster._ray()          # before Ray starts: no crash handler over wasmtime's trap handlers
    started = not ray.is_initialized()
    try:
        out, executions = distributed_run(monkeypatch, capsys, ["--distribute", "ray", "--workers", "2"],
                                          "MultiWorkerMirroredStrategy")
    finally:
        if started:
            ray.shutdown()
    assert "MultiWorkerMirroredStrategy" in out and "16 steps per execution" in out
    assert executions == [16, 16, 13] * 2
    printed_accuracy(out)


@pytest.mark.parametrize("argv", [["--distribute", "mirrored", "--steps-per-execution", "0"],
                                  ["--steps-per-execution", "4"],
                                  ["--distribute", "parameter_server", "--steps-per-execution", "4"]])
def test_main_job_rejects_steps_per_execution_without_a_synchronous_strategy(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main_job.main(argv)
    assert e.value.code == 2 and "--steps-per-execution" in capsys.readouterr().err
