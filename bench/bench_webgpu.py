"""Benchmarks of the "webgpu" device beside numpy (and torch where importable), measured in the same run.

- matmul GFLOP/s: N = 256, 512, 1024 on a CPU (software) adapter such as lavapipe, 1024, 2048, 4096
  on a real GPU (``--sizes`` overrides);
- the fused chain ``gelu_tanh(x * a + b) * sigmoid(x)`` on 2^20 elements (one kernel on webgpu);
- the MLP training step 784 -> 256 -> 256 -> 10, batch 128, softmax cross-entropy, SGD
  (``webtensor.optimizers.SGD``) inside one ``webtensor.function``: one submission per step.

Timings include the wait for the device (a readback sync after the timed runs). On a software
adapter (lavapipe runs WGSL on the CPU) the figures track correctness and regressions, not GPU speed.

Usage: ``python bench/bench_webgpu.py [--sizes 256,512] [--seconds 1.0]``
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")
import webtensor as wt  # noqa: E402
from webtensor.webgpu.runtime import is_software_adapter  # noqa: E402
from common import gelu_chain_np, init_mlp, mlp_step_np  # noqa: E402
from common import row as _row  # noqa: E402

try:
    import torch
except ImportError:
    torch = None


def timeit(fn, sync=lambda: None, seconds=1.0, min_reps=3, max_reps=200) -> float:
    """Seconds per call: two warm-up calls, then repeat until ``seconds`` have passed."""
    fn()
    fn()
    sync()
    reps, t0 = 0, time.perf_counter()
    while reps < min_reps or (time.perf_counter() - t0 < seconds and reps < max_reps):
        fn()
        reps += 1
    sync()
    return (time.perf_counter() - t0) / reps


def row(name, figures, unit):
    _row(name, figures, unit, width=34)


def bench_matmul(dev, sizes, seconds):
    rng = np.random.default_rng(0)
    mm = wt.function(lambda a, b: wt.matmul(a, b))
    for n in sizes:
        a, b = (rng.standard_normal((n, n)).astype(np.float32) for _ in range(2))
        ta, tb = wt.tensor(a, device="webgpu"), wt.tensor(b, device="webgpu")
        err = np.abs(mm(ta, tb).numpy() - a @ b).max() / np.abs(a @ b).max()
        flop = 2.0 * n ** 3
        fig = {"webgpu": flop / timeit(lambda: mm(ta, tb), dev.sync, seconds) / 1e9,
               "numpy": flop / timeit(lambda: a @ b, seconds=seconds) / 1e9}
        if torch is not None:
            fig.update(_torch_matmul(a, b, flop, seconds))
        row(f"matmul {n}x{n}x{n} (max rel err {err:.1e})", fig, "GFLOP/s")


def _torch_matmul(a, b, flop, seconds):
    out = {}
    x, y = torch.from_numpy(a), torch.from_numpy(b)
    out["torch-cpu"] = flop / timeit(lambda: x @ y, seconds=seconds) / 1e9
    if torch.cuda.is_available():
        xc, yc = x.cuda(), y.cuda()
        out["torch-cuda"] = flop / timeit(lambda: xc @ yc, torch.cuda.synchronize, seconds) / 1e9
    return out


def bench_chain(dev, seconds):
    n = 1 << 20
    rng = np.random.default_rng(1)
    x, a, b = (rng.standard_normal(n).astype(np.float32) for _ in range(3))
    f = wt.function(lambda x, a, b: wt.gelu_tanh(x * a + b) * wt.sigmoid(x))
    tx, ta, tb = (wt.tensor(v, device="webgpu") for v in (x, a, b))
    err = np.abs(f(tx, ta, tb).numpy() - gelu_chain_np(x, a, b)).max()
    kernels = len(f.get_concrete(tx, ta, tb).exe.steps)
    fig = {"webgpu": timeit(lambda: f(tx, ta, tb), dev.sync, seconds) * 1e3,
           "numpy": timeit(lambda: gelu_chain_np(x, a, b), seconds=seconds) * 1e3}
    if torch is not None:
        import torch.nn.functional as tf
        X, A, B = (torch.from_numpy(v) for v in (x, a, b))
        fig["torch-cpu"] = timeit(lambda: tf.gelu(X * A + B, approximate="tanh") * torch.sigmoid(X),
                                  seconds=seconds) * 1e3
    row(f"fused chain 2^20 ({kernels} kernel, err {err:.1e})", fig, "ms")


def bench_mlp(dev, seconds):
    rng = np.random.default_rng(2)
    init = init_mlp(rng)
    x = rng.standard_normal((128, 784)).astype(np.float32)
    y = rng.integers(0, 10, 128).astype(np.int32)
    lr = 0.05
    variables = [wt.Variable(v.copy(), device="webgpu") for v in init]
    opt = wt.optimizers.SGD(learning_rate=lr)

    @wt.function
    def step(x, y):
        w1, b1, w2, b2, w3, b3 = variables
        with wt.GradientTape() as tape:
            h = wt.relu(wt.matmul(x, w1) + b1)
            h = wt.relu(wt.matmul(h, w2) + b2)
            loss = wt.mean(wt.sparse_softmax_cross_entropy(y, wt.matmul(h, w3) + b3))
        opt.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    tx, ty = wt.tensor(x, device="webgpu"), wt.tensor(y, device="webgpu")
    params = [v.copy() for v in init]
    first = (float(step(tx, ty)), mlp_step_np(params, x, y, lr))
    kernels = len(step.get_concrete(tx, ty).exe.steps)
    fig = {"webgpu": timeit(lambda: step(tx, ty), dev.sync, seconds) * 1e3,
           "numpy": timeit(lambda: mlp_step_np(params, x, y, lr), seconds=seconds) * 1e3}
    if torch is not None:
        fig["torch-cpu"] = _torch_mlp(init, x, y, lr, seconds) * 1e3
    row(f"MLP train step ({kernels} kernels)", fig, "ms")
    print(f"{'':34} first-step loss: webgpu {first[0]:.5f}, numpy {first[1]:.5f}")


def _torch_mlp(init, x, y, lr, seconds):
    ps = [torch.tensor(v, requires_grad=True) for v in init]
    X, Y = torch.from_numpy(x), torch.from_numpy(y).long()
    opt = torch.optim.SGD(ps, lr=lr)

    def step():
        h = torch.relu(X @ ps[0] + ps[1])
        h = torch.relu(h @ ps[2] + ps[3])
        loss = torch.nn.functional.cross_entropy(h @ ps[4] + ps[5], Y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return timeit(step, seconds=seconds)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", help="matmul sizes, comma-separated")
    ap.add_argument("--seconds", type=float, default=1.0, help="time per measurement")
    args = ap.parse_args()
    try:
        dev = wt.get_device("webgpu")
    except (RuntimeError, ImportError) as e:
        print(f"webgpu unavailable: {e}")
        return
    info = dev.adapter.info
    software = is_software_adapter(info)
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else \
        ([256, 512, 1024] if software else [1024, 2048, 4096])
    print(f"webgpu adapter: {info.get('device')} ({info.get('adapter_type')}, {info.get('backend_type')})"
          + ("  -- a software adapter: figures are for correctness tracking, not GPU speed" if software else ""))
    print(f"numpy {np.__version__}" + (f", torch {torch.__version__}" if torch is not None else ", torch not installed"))
    bench_matmul(dev, sizes, args.seconds)
    bench_chain(dev, args.seconds)
    bench_mlp(dev, args.seconds)


if __name__ == "__main__":
    main()
