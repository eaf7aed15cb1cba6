"""Intra-op parallelism on a shared memory: one module's kernels split over N threads.

Every lowered kernel takes a row range ``[start, end)`` of its outermost loop (``ir.py``), and a
kernel's rows are independent (a reduction's rows are independent outputs; the reduced dimensions
are inner loops). :class:`Parallel` cuts a large kernel's rows into a FIXED set of tiles that
depends only on the kernel (its rows and work, :func:`tile_rows`), never on the thread count, and
threads take tiles from an atomic counter. Each output element is computed by exactly one call
with the same code and the same summation order whatever the thread count, so results are bitwise
identical for 1, 2, 3, 4... threads; tile boundaries are multiples of ``ROW_ALIGN`` rows, which
keeps the SIMD lane grouping (and matmul's 4-row panels) as in the one-call path, so they also
equal the plain module's results (tests check both).

The module (built once, host-independent):

- a control block of ``CONTROL_BYTES`` at a fixed address: ``GEN`` (round counter the workers
  wait on), ``TASK`` (the tile function of this round, -1: quit), ``NEXT`` (the round's low 16
  bits << 16 | the next tile), ``DONE`` (tiles finished this round), ``NTHREADS`` (set by the
  host before any call: how many to wake) and ``BLOCK``
  (nonzero: the driver may block in ``memory.atomic.wait32``; 0: it spins, as a browser's main
  thread must), ``SCRATCH``/``STRIDE`` (threads t >= 1 use ``SCRATCH + (t - 1) * STRIDE`` as
  workspace; thread 0 the address its call passes), ``END`` (the round's end of rows, for a call
  whose end is a run-time value: an export's rows driver; its tiles are the same, those past
  ``END`` are not run and the last is cut at ``END``), ``ACTIVE`` (1 while a driver runs:
  :meth:`Parallel.begin` / :meth:`Parallel.end`);
- per large kernel call a function ``tiles<k>(tid)`` that runs tiles until the counter passes the
  last one, with thread ``tid``'s scratch;
- the driver (one thread, the host's caller) publishes a round (``TASK``, counters, ``GEN`` + 1,
  ``memory.atomic.notify``), takes tiles itself, then waits until ``DONE`` counts every tile; it
  never waits for a worker that has not woken (on a busy machine it just does the tiles itself).
  Small kernels are plain calls on the driver's thread;
- an exported ``worker(tid)`` that the host runs on threads 1..N-1 (each its own instance on the
  same shared memory): it waits on ``GEN`` (``memory.atomic.wait32``) and takes tiles of the round
  it saw (compare-and-swap on ``NEXT``; the round tag makes a late worker claim nothing of a later
  round), until ``TASK`` is -1. Workers are not re-posted per kernel;
- waiting (a worker for the next round while ``ACTIVE``, the driver in ``join``) polls the
  control word up to ``SPIN`` times before it sleeps in ``memory.atomic.wait32``: the rounds of one
  call come within tens of microseconds of each other (an MLP train step: 5 rounds, the small
  kernels between them ~150 us in all), while a sleep costs a futex wake-up per round and thread
  (tens of microseconds on a VM, more under load, where the driver had done most tiles before the
  worker woke). So a worker sleeps once per call, as soon as the call ends (no polling between
  calls, where it would only take a core from other work);
- exported ``stop()`` (ends the workers) and ``threads_setup(n, block)`` (writes the control block:
  call it before starting workers), so that a host needs no address (an artifact's
  ``module_threads.wasm``); and ``wake()`` (``ACTIVE`` = 1 and an empty round: the workers wake and
  poll for the call's first round), which a host calls before it copies a call's inputs: a thread
  asleep for over ~0.5 ms takes ~150 us to wake on a VM (the idle vCPU halts; ``node
  bench/bench_threads.mjs --wake``), which the copy then hides.

Thresholds (``MIN_WORK``, ``TILE_WORK``, ``REDUCE_COST``) from ``bench/bench_threads.py --sweep`` (2
vCPUs, 2 threads, a quiet moment at load 1.2 on a machine shared with other jobs): tanh(x*1.5+0.5)
on 16K/32K/64K/128K/256K/1M elements: 0.67/0.88/1.12/1.37/1.56/1.75x; matmul M x 256 x 256 with
M = 32/64/128/256: 1.15/1.33/1.47/1.56x (best of 40 alternating calls). So a kernel is split from
~40 us of one-thread work: 64K elementwise outputs, or ~1M multiply-adds.
"""
from __future__ import annotations

from math import prod

from .binary import I32

CONTROL_BYTES = 64
GEN, TASK, NEXT, DONE, NTHREADS, BLOCK, SCRATCH, STRIDE, END, ACTIVE = 0, 4, 8, 12, 16, 20, 24, 28, 32, 36
ROW_ALIGN = 16          # rows: tile boundaries keep SIMD lanes and 4-row matmul panels as one call has them
MIN_WORK = 1 << 16      # work units (see work()) below which a kernel stays on one thread (measured, see below)
TILE_WORK = 1 << 14     # work units per tile at least (~10 us)
MAX_TILES = 32          # finer tiles even out a round's end (a late worker's share): 2 / 1 threads, 16 -> 32 tiles
                        # (80 alternating rounds): MLP train step x1.66 -> x1.68, CNN x1.65 -> x1.67; matmul 1024
                        # -0.5% (each tile is a call; B is packed once per thread, Lowered.reuses_b)
PACKED_ROWS = 32        # rows per tile at least for a kernel with workspace (a template that packs an operand
                        # per call): 128x784x256 matmul on 1 thread in 1/2/4/8 tiles: 976/1013/1069/1185 us


SPIN = 1 << 16          # polls of a control word before memory.atomic.wait32: ~33 us (0.5 ns a poll in wasmtime),
                        # enough for most gaps between a call's rounds (MLP train step: 0-13 us, one ~100 us).
                        # Saves ~9 us a round where a core is free (30 chained 128x256x256 matmuls, 2 threads:
                        # best 9.21-9.55 vs 9.49-9.78 ms); where none is (load 6 on 2 vCPUs, MLP/CNN, median of
                        # 100 shuffled calls vs SPIN 0), 2^16 / 2^17 / 2^18 polls cost 3-5% / 6-8% / 11-14%
REDUCE_COST = 16        # reduced iterations per work unit: a SIMD multiply-add is ~16x cheaper than a tanh


def work(kernel) -> int:
    """A kernel's cost in work units (~ one elementwise output with a transcendental, ~0.6 ns): its
    output elements plus its reduced iterations / ``REDUCE_COST`` (measured: 2 threads break even
    near 50K-element elementwise kernels and near 32x256x256 matmuls, i.e. 1-2 M multiply-adds)."""
    out = prod(kernel.out.shape)
    return out + (prod(kernel.space) // REDUCE_COST if kernel.n_reduce else 0)


def tile_rows(rows: int, units: int, min_rows: int = ROW_ALIGN) -> int | None:
    """Rows per tile for a kernel of ``rows`` rows and ``units`` of work (:func:`work`), tiles of at
    least ``min_rows`` rows (a multiple of ``ROW_ALIGN``), or None to keep it on one thread. Depends
    on the kernel only (never on the thread count)."""
    if units < MIN_WORK or rows < 2 * min_rows:
        return None
    n = min(MAX_TILES, units // TILE_WORK, rows // min_rows)
    if n < 2:
        return None
    chunk = -(-rows // n)
    return -(-chunk // ROW_ALIGN) * ROW_ALIGN


def control_words(n: int, block: bool, scratch_at: int, scratch: int):
    """The control block as ``threads_setup(n, block)`` writes it, for a host that writes it itself
    (``scratch``: :attr:`Parallel.scratch`)."""
    words = [0] * (CONTROL_BYTES // 4)
    words[NTHREADS // 4], words[BLOCK // 4] = n, int(block)
    words[SCRATCH // 4], words[STRIDE // 4] = scratch_at, -(-scratch // 64) * 64
    return words


def _push(f, a):
    if callable(a):
        a(f)
    else:
        f.i32_const(a)


class Parallel:
    """The threaded parts of one module (module docstring). ``control``: the control block's byte
    address (``CONTROL_BYTES``). ``scratch``: the largest workspace a call needs (``Lowered.scratch``),
    grown by each :meth:`call`."""

    def __init__(self, module, control: int):
        self.m, self.control = module, control
        self.tasks: list = []   # one tiles function per split call, in emission order
        self.scratch = 0
        self._join = None

    @property
    def stride(self) -> int:
        """Bytes of workspace per thread (:attr:`scratch` rounded up to 64)."""
        return -(-self.scratch // 64) * 64

    def _word(self, f, field):
        f.i32_const(self.control + field)

    def call(self, f, lw, addresses, scratch: int, units: int, end=None) -> None:
        """Emit into driver ``f`` a call of ``lw`` over all its rows: split into tiles over the threads
        when :func:`tile_rows` says it is large enough, else one plain call (``runtime.emit_call``'s
        arguments, plus the kernel's :func:`work`). ``end``: None (all rows) or a ``push(f)`` of a
        run-time end (at most ``lw.rows``): the tiles stay those of all rows (so the same bits), the
        round runs those below it."""
        if not lw.rows:
            return
        chunk = tile_rows(lw.rows, units, PACKED_ROWS if lw.scratch else ROW_ALIGN)
        if chunk is None:
            for a in addresses:
                _push(f, a)
            f.i32_const(0)
            f.i32_const(lw.rows) if end is None else end(f)
            f.i32_const(scratch).call(lw.name)
            return
        task = len(self.tasks)
        self.scratch = max(self.scratch, lw.scratch)
        n = -(-lw.rows // chunk)
        self.tasks.append(self._tiles(task, lw, addresses, scratch, chunk, end is not None))
        w = self._word
        tag = f.local(I32)
        # round g + 1: TASK, NEXT = (tag << 16) | 0 and DONE = 0 before GEN, so a worker that sees
        # the new GEN sees them (sequentially consistent atomics)
        w(f, GEN)
        f.i32_atomic_load().i32_const(1).i32_add().i32_const(0xFFFF).i32_and().local_set(tag)
        for field in (TASK, NEXT, DONE):
            w(f, field)
            if field == TASK:
                f.i32_const(task)
            elif field == NEXT:
                f.local_get(tag).i32_const(16).i32_shl()
            else:
                f.i32_const(0)
            f.i32_atomic_store()
        if end is not None:
            # END after NEXT (a late worker of the last round that reads this END then reads NEXT's
            # new tag and claims nothing: it never counts tiles with another round's end) and before
            # GEN (a worker that sees this round sees its END)
            w(f, END)
            end(f)
            f.i32_atomic_store()
        self._next_round(f)
        f.i32_const(0).local_get(tag).call(f"tiles{task}")
        if end is None:
            f.i32_const(n)
        else:                           # ceil(end / chunk) tiles
            end(f)
            f.i32_const(chunk - 1).i32_add().i32_const(chunk).i32_div_u()
        f.call(self.join())

    def _next_round(self, f) -> None:
        """Emit ``GEN`` + 1 and wake the ``NTHREADS`` - 1 workers waiting on it (a round's fields are
        written before: a worker that sees the new ``GEN`` sees them)."""
        self._word(f, GEN)
        f.i32_const(1).i32_atomic_rmw_add().drop()
        self._word(f, GEN)
        self._word(f, NTHREADS)
        f.i32_atomic_load().i32_const(1).i32_sub().memory_atomic_notify().drop()

    def begin(self, f) -> None:
        """Emit into driver ``f``, before its first :meth:`call`: ``ACTIVE`` = 1 (the workers poll
        for the next round instead of sleeping)."""
        self._word(f, ACTIVE)
        f.i32_const(1).i32_atomic_store()

    def end(self, f) -> None:
        """Emit into driver ``f``, after its last :meth:`call`: ``ACTIVE`` = 0 (the workers sleep)."""
        self._word(f, ACTIVE)
        f.i32_const(0).i32_atomic_store()

    def _tiles(self, task, lw, addresses, scratch, chunk, dynamic: bool):
        """``tiles<task>(tid, tag)``: claim tiles of round ``tag`` (compare-and-swap on ``NEXT``, whose
        high 16 bits are the round: a thread that woke late for an earlier round claims nothing) and
        run them; each finished tile adds one to ``DONE``. ``dynamic``: the rows end at ``END``, not
        at ``lw.rows``."""
        g = self.m.function(f"tiles{task}", params=[I32, I32])
        v, t, start, packed = g.local(I32), g.local(I32), g.local(I32), g.local(I32)
        n = -(-lw.rows // chunk)
        rows = lw.rows
        if dynamic:         # rows = min(END, lw.rows) (never past the kernel, whatever END holds), n = ceil(rows / chunk)
            rows, n = g.local(I32), g.local(I32)
            self._word(g, END)
            g.i32_atomic_load().local_tee(rows).i32_const(lw.rows).local_get(rows).i32_const(lw.rows).i32_lt_u().select()
            g.local_tee(rows).i32_const(chunk - 1).i32_add().i32_const(chunk).i32_div_u().local_set(n)

        def push(x):        # a constant, or a local holding the round's value
            g.i32_const(x) if not dynamic else g.local_get(x)
        with g.block():
            with g.loop():
                self._word(g, NEXT)
                g.i32_atomic_load().local_tee(v).i32_const(16).i32_shr_u().local_get(1).i32_ne().br_if(1)
                g.local_get(v).i32_const(0xFFFF).i32_and().local_tee(t)
                push(n)
                g.i32_ge_u().br_if(1)
                self._word(g, NEXT)
                g.local_get(v).local_get(v).i32_const(1).i32_add().i32_atomic_rmw_cmpxchg()
                g.local_get(v).i32_ne().br_if(0)                   # another thread took it: again
                for a in addresses:
                    _push(g, a)
                g.local_get(t).i32_const(chunk).i32_mul().local_tee(start)
                # end = min(start + chunk, rows)
                g.local_get(start).i32_const(chunk).i32_add()
                push(rows)
                g.local_get(start).i32_const(chunk).i32_add()
                push(rows)
                g.i32_lt_u().select()
                if lw.scratch:      # tid ? SCRATCH + (tid - 1) * STRIDE : scratch
                    g.local_get(0).i32_const(1).i32_sub()
                    self._word(g, STRIDE)
                    g.i32_load().i32_mul()
                    self._word(g, SCRATCH)
                    g.i32_load().i32_add()
                    g.i32_const(scratch).local_get(0).select()
                else:
                    g.i32_const(scratch)
                if lw.reuses_b:     # after this thread's first tile its scratch holds B packed (Lowered)
                    g.local_get(packed).i32_or()
                g.call(lw.name)
                if lw.reuses_b:
                    g.i32_const(1).local_set(packed)
                self._word(g, DONE)
                g.i32_const(1).i32_atomic_rmw_add().drop()
                self._word(g, DONE)
                g.i32_const(1).memory_atomic_notify().drop()
                g.br(0)
        return g.finish()

    def join(self) -> str:
        """``join(n)``: the driver waits until ``n`` tiles of the round are done (spins ``SPIN``
        polls, then blocks in ``memory.atomic.wait32``; spins only where ``BLOCK`` is 0). It never
        waits for a worker that has not woken: the driver takes whatever tiles are left itself."""
        if self._join is None:
            g = self._join = self.m.function("join", params=[I32])
            d, spin = g.local(I32), g.local(I32)
            g.i32_const(SPIN).local_set(spin)
            with g.loop():
                self._word(g, DONE)
                g.i32_atomic_load().local_tee(d).local_get(0).i32_lt_u()
                with g.if_():
                    self._spin(g, spin, 2)
                    self._word(g, BLOCK)
                    g.i32_atomic_load()
                    with g.if_():
                        self._word(g, DONE)
                        g.local_get(d).i64_const(-1).memory_atomic_wait32().drop()
                    g.br(1)
            g.finish()
        return "join"

    @staticmethod
    def _spin(g, spin, depth: int) -> None:
        """While local ``spin`` is nonzero: decrement it and branch to the poll loop ``depth`` labels
        out (poll again instead of sleeping)."""
        g.local_get(spin)
        with g.if_():
            g.local_get(spin).i32_const(1).i32_sub().local_set(spin)
            g.br(depth)

    def finish(self, scratch_at: int) -> None:
        """Add the exported ``worker(tid)``, ``stop()`` (``TASK`` = -1, a new round: the workers
        return) and ``threads_setup(n, block)`` (module docstring); threads 1.. get :attr:`scratch`
        bytes (rounded up to 64) each from byte ``scratch_at`` on."""
        stride = self.stride
        g = self.m.function("threads_setup", params=[I32, I32], export=True)
        for field in range(0, CONTROL_BYTES, 4):
            self._word(g, field)
            if field == NTHREADS:
                g.local_get(0)
            elif field == BLOCK:
                g.local_get(1)
            elif field == SCRATCH:
                g.i32_const(scratch_at)
            elif field == STRIDE:
                g.i32_const(stride)
            else:
                g.i32_const(0)
            g.i32_atomic_store()
        g.finish()
        g = self.m.function("stop", export=True)
        self._word(g, TASK)
        g.i32_const(-1).i32_atomic_store()
        self._word(g, GEN)
        g.i32_const(1).i32_atomic_rmw_add().drop()
        self._word(g, GEN)
        g.i32_const(-1).memory_atomic_notify().drop()
        g.finish()
        g = self.m.function("wake", export=True)
        # ACTIVE = 1 and an empty round (TASK matches no tiles function): the workers wake and poll
        # for the call's first round. A round's tag is read from GEN when it is published, and a
        # worker that reads the next round's TASK under this GEN claims nothing (NEXT's tag differs)
        self.begin(g)
        self._word(g, TASK)
        g.i32_const(len(self.tasks)).i32_atomic_store()
        self._next_round(g)
        g.finish()
        g = self.m.function("worker", params=[I32], export=True)
        seen, gen, task, spin = g.local(I32), g.local(I32), g.local(I32), g.local(I32)
        with g.loop():
            self._word(g, GEN)
            g.i32_atomic_load().local_tee(gen).local_get(seen).i32_eq()
            with g.if_():
                self._word(g, ACTIVE)       # the next round of a running call: within SPIN polls, mostly
                g.i32_atomic_load()
                with g.if_():
                    self._spin(g, spin, 3)
                self._word(g, GEN)
                g.local_get(seen).i64_const(-1).memory_atomic_wait32().drop().br(1)
            g.local_get(gen).local_set(seen)
            g.i32_const(SPIN).local_set(spin)
            self._word(g, TASK)
            g.i32_atomic_load().local_tee(task).i32_const(0).i32_lt_s()
            with g.if_():
                g.return_()
            for k in range(len(self.tasks)):
                g.local_get(task).i32_const(k).i32_eq()
                with g.if_():
                    g.local_get(0).local_get(gen).i32_const(0xFFFF).i32_and().call(f"tiles{k}")
            g.br(0)
        g.finish()
