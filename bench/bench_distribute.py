"""Training throughput of the digits CNN (the main job's model) with webtensor.distribute, in one run:

- ``MirroredStrategy`` with 1 and with 2 replicas in this process (``"wasm:0"``, ``"wasm:1"``: an engine
  each, in parallel threads), and plain ``fit`` on one engine as the reference;
- ``MultiWorkerMirroredStrategy`` on a local Ray cluster with 1 and with 2 worker actors.

    python bench/bench_distribute.py [--epochs 5] [--rounds 5] [--batch 128,512] [--per-replica-batch]
                                     [--steps-per-execution 1,8,16] [--no-ray] [--profile] [--handoff]

Every configuration is built and warmed up first (tracing, export, worker start: one epoch, not
timed); then ``--rounds`` rounds each time every configuration for ``--epochs`` epochs, in turn, so
that load from other processes falls on all alike. Prints training images/s (median round) and the
2-vs-1 ratios per round (median and range; targets, issue 17: >= 1.6 in one process, >= 1.4 on Ray),
for each ``steps_per_execution`` (``compile``'s argument: steps the replicas run per hand-off).
``--batch`` is the global batch of every configuration (the same work split 2 ways: the correctness
tests' setting), or with ``--per-replica-batch`` the batch of each replica (k replicas train at global
batch k x batch: TensorFlow's ``BATCH_SIZE_PER_REPLICA * num_replicas_in_sync`` convention, which
keeps every replica's step as large as one engine's).
``--profile`` adds where a step's time goes in each distributed configuration (ms per step, over
all timed rounds): the fit loop between steps (``data``: the input pipeline), the ``coordinator``
(preparing steps, metrics), the replicas' ``compute``, gradient ``exchange`` (waiting for the
slowest replica included) and ``sum`` (replicas' mean), and the ``handoff`` (the rest of the
execution's wall time: threads, Ray calls). ``--handoff`` adds the wall time of an empty execution
(no steps) marked as an epoch's last, in each distributed configuration: the fixed cost of a hand-off
(thread pool, or a Ray call per worker with worker 0's variables sent back), median and range
over 60 calls after the rounds.
"""
from __future__ import annotations

import argparse
import contextlib
import time

import numpy as np

import webtensor as wt
from webtensor.__main__ import LEARNING_RATE, build_model
from webtensor.distribute.strategy import _StepTimes


def trained_model(strategy, x, y, batch: int, steps_per_execution: int = 1):
    """The CNN compiled under ``strategy`` (None: plain fit), after one untimed epoch."""
    wt.set_seed(0)
    with wt.device("wasm"):
        with strategy.scope() if strategy is not None else contextlib.nullcontext():
            model = build_model("cnn")
            model.compile(wt.optimizers.Adam(LEARNING_RATE), wt.nn.losses.SparseCategoricalCrossentropy(from_logits=True),
                          steps_per_execution=steps_per_execution)
        model.fit(x, y, batch_size=batch, epochs=1, verbose=0)          # warm-up: trace, export, start
    return model


def images_per_second(model, x, y, epochs: int, batch: int) -> float:
    with wt.device("wasm"):
        start = time.perf_counter()
        model.fit(x, y, batch_size=batch, epochs=epochs, verbose=0)
        return epochs * len(x) / (time.perf_counter() - start)


def run_configs(D, x, y, batch: int, spe: int, args) -> None:
    configs = {"plain fit, one engine (reference)": None,
               "MirroredStrategy, 1 replica": D.MirroredStrategy(["wasm:0"]),
               "MirroredStrategy, 2 replicas": D.MirroredStrategy(["wasm:0", "wasm:1"])}
    pairs = [("MirroredStrategy 2 / 1 replicas (target >= 1.6)", "MirroredStrategy, 2 replicas",
              "MirroredStrategy, 1 replica")]
    if not args.no_ray:
        configs["MultiWorkerMirroredStrategy (Ray), 1 worker"] = D.MultiWorkerMirroredStrategy(num_workers=1)
        configs["MultiWorkerMirroredStrategy (Ray), 2 workers"] = D.MultiWorkerMirroredStrategy(num_workers=2)
        pairs.append(("Ray 2 / 1 workers (target >= 1.4)", "MultiWorkerMirroredStrategy (Ray), 2 workers",
                      "MultiWorkerMirroredStrategy (Ray), 1 worker"))
    # the global batch of each configuration: ``batch``, or with --per-replica-batch ``batch`` per replica
    # (TensorFlow's convention for MirroredStrategy: GLOBAL_BATCH_SIZE = BATCH_SIZE_PER_REPLICA *
    # num_replicas_in_sync, so that each replica's step stays as efficient as one engine's)
    batches = {name: batch * (s.num_replicas_in_sync if args.per_replica_batch and s is not None else 1)
               for name, s in configs.items()}
    models = {name: trained_model(s, x, y, batches[name], spe) for name, s in configs.items()}
    if args.profile:
        for s in configs.values():
            if s is not None:
                s._times = _StepTimes()
    rates = {name: [] for name in configs}
    for _ in range(args.rounds):
        for name, model in models.items():
            rates[name].append(images_per_second(model, x, y, args.epochs, batches[name]))
    what = f"batch {batch} per replica (global {batch} x replicas)" if args.per_replica_batch else f"global batch {batch}"
    print(f"digits CNN training, {what}, steps_per_execution {spe}, {args.rounds} rounds of "
          f"{args.epochs} epochs of {len(x)} images, configurations in turn")
    for name, v in rates.items():
        print(f"  {name:<48} {np.median(v):9.0f} images/s (median round; {min(v):.0f}-{max(v):.0f})")
    for label, two, one in pairs:
        r = [a / b for a, b in zip(rates[two], rates[one])]
        print(f"  {label:<48} {np.median(r):9.2f}x (median round; {min(r):.2f}-{max(r):.2f})")
    if args.profile:
        print("  ms per step:" + " " * 36 + "".join(f"{k:>12}" for k in _StepTimes().per_step_ms()))
        for name, s in configs.items():
            if s is not None:
                print(f"  {name:<48} " + "".join(f"{v:12.3f}" for v in s._times.per_step_ms().values()))
    if args.handoff:
        print("  empty execution, an epoch's last (ms; median, range of 60):")
        for name, s in configs.items():
            if s is not None:
                t = []
                for _ in range(60):
                    start = time.perf_counter()
                    s._run_steps([[]] * s.num_replicas_in_sync, False, True)
                    t.append(1e3 * (time.perf_counter() - start))
                print(f"  {name:<48} {np.median(t):9.2f} ({min(t):.2f}-{max(t):.2f})")
    for s in configs.values():
        getattr(s, "shutdown", lambda: None)()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--batch", default="128,512", help="global batch sizes, comma-separated")
    p.add_argument("--per-replica-batch", action="store_true",
                   help="--batch is per replica: k replicas (workers) train at global batch k x batch")
    p.add_argument("--steps-per-execution", default="1,8,16", help="compile(steps_per_execution=...), comma-separated")
    p.add_argument("--no-ray", action="store_true")
    p.add_argument("--profile", action="store_true", help="print where a step's time goes (ms per step)")
    p.add_argument("--handoff", action="store_true", help="print the wall time of an empty execution (ms)")
    args = p.parse_args()
    (x, y), _ = wt.datasets.digits(seed=0)
    x, y = np.asarray(x), np.asarray(y)
    D = wt.distribute
    if not args.no_ray:
        import ray
        ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    for batch in [int(b) for b in args.batch.split(",")]:
        for spe in [int(k) for k in args.steps_per_execution.split(",")]:
            run_configs(D, x, y, batch, spe, args)
    if not args.no_ray:
        ray.shutdown()


if __name__ == "__main__":
    main()
