"""Training throughput of the digits CNN (the main job's model) with webtensor.distribute, in one run:

- ``MirroredStrategy`` with 1 and with 2 replicas in this process (``"wasm:0"``, ``"wasm:1"``: an engine
  each, in parallel threads), and plain ``fit`` on one engine as the reference;
- ``MultiWorkerMirroredStrategy`` on a local Ray cluster with 1 and with 2 worker actors.

    python bench/bench_distribute.py [--epochs 20] [--batch 128,512] [--no-ray]

Prints training images/s and the 2-vs-1 ratios (targets, issue 17: >= 1.6 in one process, >= 1.4 on
Ray). The first epoch (tracing, export, worker start) is not timed.
"""
from __future__ import annotations

import argparse
import contextlib
import time

import numpy as np

import webtensor as wt
from webtensor.__main__ import LEARNING_RATE, build_model


def images_per_second(strategy, x, y, epochs: int, batch: int) -> float:
    wt.set_seed(0)
    with wt.device("wasm"):
        with strategy.scope() if strategy is not None else contextlib.nullcontext():
            model = build_model("cnn")
            model.compile(wt.optimizers.Adam(LEARNING_RATE), wt.nn.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(x, y, batch_size=batch, epochs=1, verbose=0)          # warm-up: trace, export, start
        start = time.perf_counter()
        model.fit(x, y, batch_size=batch, epochs=epochs, verbose=0)
        return epochs * len(x) / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch", default="128,512", help="global batch sizes, comma-separated")
    p.add_argument("--no-ray", action="store_true")
    args = p.parse_args()
    (x, y), _ = wt.datasets.digits(seed=0)
    x, y = np.asarray(x), np.asarray(y)
    D = wt.distribute
    if not args.no_ray:
        import ray
        ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    for batch in [int(b) for b in args.batch.split(",")]:
        rows = [("plain fit, one engine (reference)", images_per_second(None, x, y, args.epochs, batch))]
        one = images_per_second(D.MirroredStrategy(["wasm:0"]), x, y, args.epochs, batch)
        two = images_per_second(D.MirroredStrategy(["wasm:0", "wasm:1"]), x, y, args.epochs, batch)
        rows += [("MirroredStrategy, 1 replica", one), ("MirroredStrategy, 2 replicas", two)]
        ratios = [("MirroredStrategy 2 / 1 replicas (target >= 1.6)", two / one)]
        if not args.no_ray:
            rates = []
            for n in (1, 2):
                s = D.MultiWorkerMirroredStrategy(num_workers=n)
                rates.append(images_per_second(s, x, y, args.epochs, batch))
                s.shutdown()
            rows += [("MultiWorkerMirroredStrategy (Ray), 1 worker", rates[0]),
                     ("MultiWorkerMirroredStrategy (Ray), 2 workers", rates[1])]
            ratios.append(("Ray 2 / 1 workers (target >= 1.4)", rates[1] / rates[0]))
        print(f"digits CNN training, global batch {batch}, {args.epochs} timed epochs of {len(x)} images")
        for name, v in rows:
            print(f"  {name:<48} {v:9.0f} images/s")
        for name, r in ratios:
            print(f"  {name:<48} {r:9.2f}x")
    if not args.no_ray:
        ray.shutdown()


if __name__ == "__main__":
    main()
