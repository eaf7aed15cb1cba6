"""Direct convolution vs im2col + matmul, per shape and device, measured in the same run: the
measurements behind ``core/ops/nn.py``'s cost rule (``direct_conv_wins``).

For each convolution shape (3x3 or 1x1, 'same', stride 1) both forms of the forward run inside one
``webtensor.function`` on each device: ``conv2d_direct`` (one reduction per output, no im2col
buffer) and ``extract_patches`` + ``matmul`` (im2col); first the digits CNN's forward (batch 32:
conv 3x3 16, pool, conv 3x3 32, pool, dense 10) with each form, and its kernel count. Calls alternate between the two forms and
the best of ``--repeats`` rounds is kept; the ratio im2col / direct (> 1: direct is faster) is
printed with its range over rounds. Also checks that both forms agree (max |difference|).

Depthwise shapes (``DEPTHWISE``, groups == C) compare ``depthwise_conv2d_native`` with the grouped
im2col form (patches + one batched matmul over the C groups), the ratio grouped / direct.

Usage: ``python bench/bench_conv.py [--devices wasm,webgpu] [--repeats 5] [--seconds 0.3]
[--cnn-only | --depthwise-only]``
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")
import webtensor as wt  # noqa: E402
from webtensor.core.compile import compile_graph  # noqa: E402
from webtensor.core.ops import nn as N  # noqa: E402

# (batch, H, W, C, K (window side), O): the digits CNN's two layers, then wider and 1x1 layers
SHAPES = [(32, 28, 28, 1, 3, 16), (32, 14, 14, 16, 3, 32), (32, 28, 28, 3, 3, 8), (8, 28, 28, 3, 3, 32),
          (8, 28, 28, 8, 3, 8), (8, 14, 14, 32, 3, 64), (8, 14, 14, 64, 3, 64), (8, 7, 7, 128, 3, 128),
          (8, 14, 14, 64, 1, 64), (8, 14, 14, 256, 1, 16), (8, 14, 14, 16, 1, 256)]
# depthwise (groups == C; batch, H, W, C, K, M): MobileNet-like 3x3 layers, a 5x5 one, a multiplier
DEPTHWISE = [(8, 56, 56, 32, 3, 1), (8, 28, 28, 128, 3, 1), (8, 14, 14, 256, 3, 1), (8, 28, 28, 64, 5, 1),
             (8, 28, 28, 16, 3, 4)]


def im2col(x, f):
    kh, kw, c, o = f.shape
    p = N.extract_patches(x, ksize=(kh, kw), strides=(1, 1), dilations=(1, 1), pads=_pads(kh), pad_value=0.0)
    n, oh, ow = p.shape[:3]
    return wt.reshape(wt.matmul(wt.reshape(p, (n * oh * ow, kh * kw * c)), wt.reshape(f, (kh * kw * c, o))),
                      (n, oh, ow, o))


def direct(x, f):
    return N.conv2d_direct(x, f, strides=(1, 1), dilations=(1, 1), pads=_pads(f.shape[0]))


def grouped(x, f):
    """conv2d's grouped form for groups == C (before depthwise_conv2d_native): im2col, then one
    batched matmul over the C groups of one input channel."""
    kh, kw, c, m = f.shape
    p = N.extract_patches(x, ksize=(kh, kw), strides=(1, 1), dilations=(1, 1), pads=_pads(kh), pad_value=0.0)
    n, oh, ow = p.shape[:3]
    pg = wt.transpose(wt.reshape(p, (n * oh * ow, kh * kw, c)), (2, 0, 1))
    fg = wt.transpose(wt.reshape(f, (kh * kw, c, m)), (1, 0, 2))
    return wt.reshape(wt.transpose(wt.matmul(pg, fg), (1, 0, 2)), (n, oh, ow, c * m))


def depthwise(x, f):
    return N.depthwise_conv2d_native(x, f, strides=(1, 1), dilations=(1, 1), pads=_pads(f.shape[0]))


def cnn(conv):
    """The digits CNN's forward (bench/bench_wasm.py's, batch 32) with its convolutions as ``conv``."""
    def forward(x, k1, c1, k2, c2, w, b):
        h = wt.max_pool2d(wt.relu(conv(x, k1) + c1), 2)
        h = wt.max_pool2d(wt.relu(conv(h, k2) + c2), 2)
        return wt.matmul(wt.reshape(h, (h.shape[0], -1)), w) + b
    return forward


def _pads(k):
    return (((k - 1) // 2, k // 2),) * 2


def per_call(fn, args, seconds):
    fn(*args).numpy()
    reps, t0 = 0, time.perf_counter()
    while reps < 2 or time.perf_counter() - t0 < seconds:
        out = fn(*args)
        reps += 1
    out.numpy()      # waits for the device
    return (time.perf_counter() - t0) / reps


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--devices", default="wasm,webgpu")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=0.3)
    ap.add_argument("--cnn-only", action="store_true", help="only the digits CNN's forward")
    ap.add_argument("--depthwise-only", action="store_true", help="only the depthwise shapes")
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    if a.depthwise_only:
        return bench_depthwise(a, rng)
    print(f"{'device':8} {'workload':26} {'kernels':>7} {'im2col ms':>10} {'direct ms':>10}  im2col/direct (range)")
    for dev in a.devices.split(","):
        with wt.device(dev):
            args = [wt.tensor(v) for v in (rng.standard_normal((32, 28, 28, 1)), rng.standard_normal((3, 3, 1, 16)) / 3,
                                           rng.standard_normal(16) * 0.1, rng.standard_normal((3, 3, 16, 32)) / 12,
                                           rng.standard_normal(32) * 0.1, rng.standard_normal((1568, 10)) / 40,
                                           rng.standard_normal(10) * 0.1)]
            fi, fd = wt.function(cnn(im2col)), wt.function(cnn(direct))
            err = np.abs(fi(*args).numpy() - fd(*args).numpy()).max()
            kernels = [len(compile_graph(f.get_concrete(*args).graph).steps) for f in (fi, fd)]
            ti, td = [], []
            for _ in range(a.repeats):
                ti.append(per_call(fi, args, a.seconds))
                td.append(per_call(fd, args, a.seconds))
            r = [i / d for i, d in zip(ti, td)]
            print(f"{dev:8} {'CNN forward, batch 32':26} {'%d->%d' % tuple(kernels):>7} {min(ti) * 1e3:10.2f} "
                  f"{min(td) * 1e3:10.2f}  {min(ti) / min(td):5.2f} ({min(r):.2f}-{max(r):.2f})  max|diff| {err:.1e}",
                  flush=True)
    if a.cnn_only:
        return
    bench_depthwise(a, rng)
    print(f"{'device':8} {'N,H,W,C -> K,O':26} {'K':>5} {'im2col ms':>10} {'direct ms':>10}  im2col/direct (range)")
    for dev in a.devices.split(","):
        with wt.device(dev):
            for n, h, w, c, k, o in SHAPES:
                x = wt.tensor(rng.standard_normal((n, h, w, c)).astype(np.float32))
                f = wt.tensor(rng.standard_normal((k, k, c, o)).astype(np.float32) / np.sqrt(k * k * c))
                fi, fd = wt.function(im2col), wt.function(direct)
                err = np.abs(fi(x, f).numpy() - fd(x, f).numpy()).max()
                ti, td = [], []
                for _ in range(a.repeats):
                    ti.append(per_call(fi, (x, f), a.seconds))
                    td.append(per_call(fd, (x, f), a.seconds))
                r = [i / d for i, d in zip(ti, td)]
                print(f"{dev:8} {f'{n},{h},{w},{c} -> {k}x{k},{o}':26} {k * k * c:5} {min(ti) * 1e3:10.2f} "
                      f"{min(td) * 1e3:10.2f}  {min(ti) / min(td):5.2f} ({min(r):.2f}-{max(r):.2f})  "
                      f"max|diff| {err:.1e}", flush=True)


def compare(fa, fb, args, repeats, seconds):
    """Best-of-``repeats`` times of ``fa`` and ``fb`` (alternating) and the per-round ratios a / b."""
    ta, tb = [], []
    for _ in range(repeats):
        ta.append(per_call(fa, args, seconds))
        tb.append(per_call(fb, args, seconds))
    return min(ta), min(tb), [x / y for x, y in zip(ta, tb)]


def bench_depthwise(a, rng):
    """Depthwise convolutions: the grouped im2col form (conv2d's path for groups == C before
    ``depthwise_conv2d_native``) against the direct op, per device, in the same run."""
    print(f"{'device':8} {'depthwise N,H,W,C K,M':26} {'KH*KW':>5} {'grouped ms':>10} {'direct ms':>10}  "
          f"grouped/direct (range)")
    for dev in a.devices.split(","):
        with wt.device(dev):
            for n, h, w, c, k, m in DEPTHWISE:
                x = wt.tensor(rng.standard_normal((n, h, w, c)).astype(np.float32))
                f = wt.tensor(rng.standard_normal((k, k, c, m)).astype(np.float32) / k)
                fg, fd = wt.function(grouped), wt.function(depthwise)
                err = np.abs(fg(x, f).numpy() - fd(x, f).numpy()).max()
                tg, td, r = compare(fg, fd, (x, f), a.repeats, a.seconds)
                print(f"{dev:8} {f'{n},{h},{w},{c} {k}x{k},{m}':26} {k * k:5} {tg * 1e3:10.2f} {td * 1e3:10.2f}  "
                      f"{tg / td:5.2f} ({min(r):.2f}-{max(r):.2f})  max|diff| {err:.1e}", flush=True)


if __name__ == "__main__":
    main()
