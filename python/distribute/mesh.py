"""Worker-to-worker links for ``MultiWorkerMirroredStrategy``: a TCP connection between every two
worker actors, over which each step's gradients go straight from worker to worker. Ray sets the
links up (the coordinator gathers the listening addresses and hands them out with a fresh random
token) but carries no step's data: on this 2-core machine a Ray actor call costs about 1.5 ms per
message under load, a socket about 0.02 ms (``bench/bench_distribute.py --profile``, "exchange").

A message is one step's item of a worker, ``(gradient buffers, loss, y_pred or None)``, as raw bytes
after an 8-byte length: every worker runs the same program, so the receiver reads a peer's item
with its own item's dtypes and shapes, and a message of another length is an error. A connection
is accepted only when it opens with the mesh's token and a rank not yet linked.
"""
from __future__ import annotations

import hmac
import select
import socket
import time
import struct
from concurrent.futures import ThreadPoolExecutor

import numpy as np

__all__ = ["Mesh", "PeerLost"]

_HEADER = struct.Struct("<Q")
_HELLO = struct.Struct("<I")


class PeerLost(Exception):
    """A peer's link closed or failed, or the coordinator aborted the execution."""


def _recv_exact(sock, view, should_stop, poll: float) -> None:
    """Fill ``view`` from ``sock`` (blocking, so that sends in another thread never time out),
    checking ``should_stop()`` every ``poll`` seconds while nothing arrives."""
    got = 0
    while got < len(view):
        try:
            if not select.select([sock], [], [], poll)[0]:
                if should_stop():
                    raise PeerLost("aborted by the coordinator")
                continue
            k = sock.recv_into(view[got:])
        except OSError as e:
            raise PeerLost(f"link lost: {e}") from None
        if k == 0:
            raise PeerLost("a peer closed its link")
        got += k


class Mesh:
    """One worker's end of the links: :meth:`listen`, then :meth:`connect` on every worker at
    once, then :meth:`exchange` once per step. ``aborted`` (set from another thread) makes a
    waiting :meth:`exchange` raise :class:`PeerLost` within ``poll`` seconds."""

    def __init__(self, poll: float = 0.5):
        self.server = None
        self.links: dict = {}
        self.size = 1           # workers in the mesh (this one included)
        self.aborted = False
        self._poll = poll
        self._sender = ThreadPoolExecutor(1, thread_name_prefix="webtensor-mesh")   # sends never block receives

    def listen(self, host: str) -> tuple[str, int]:
        """Start listening (once); returns ``(host, port)`` for the peers."""
        if self.server is None:
            self.server = socket.create_server(("", 0))
        return host, self.server.getsockname()[1]

    def connect(self, rank: int, addresses: list, token: bytes, timeout: float = 60.0) -> None:
        """Link to every peer (``addresses[i]``: worker ``i``'s, this one's at ``rank``): dial the lower
        ranks, accept the higher ones. Earlier links are closed.

        Raises:
            TimeoutError/OSError: a peer cannot be reached or does not dial in within ``timeout``.
        """
        self.close_links()
        self.aborted = False
        self.size = len(addresses)
        links = {}
        for i in range(rank):
            s = socket.create_connection(tuple(addresses[i]), timeout=timeout)
            s.sendall(token + _HELLO.pack(rank))
            links[i] = s
        deadline = time.monotonic() + timeout
        while len(links) < len(addresses) - 1:
            self.server.settimeout(max(deadline - time.monotonic(), 0.001))
            s, _ = self.server.accept()
            hello = bytearray(len(token) + _HELLO.size)
            give_up = min(deadline, time.monotonic() + 5.0)     # a silent stranger is dropped soon
            try:
                _recv_exact(s, memoryview(hello), lambda: time.monotonic() > give_up, self._poll)
            except PeerLost:
                s.close()
                continue
            (peer,) = _HELLO.unpack_from(hello, len(token))
            if not hmac.compare_digest(bytes(hello[:len(token)]), token) or not rank < peer < len(addresses) \
                    or peer in links:
                s.close()           # not one of this mesh's workers
                continue
            links[peer] = s
        for s in links.values():
            s.settimeout(None)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.links = links

    def exchange(self, rank: int, item) -> list:
        """Send this worker's ``item`` to every peer and return every worker's, in rank order.

        Raises:
            PeerLost: a peer's link closed (it died), or ``aborted``. ValueError: a message of
            another length than this worker's.
        """
        if len(self.links) != self.size - 1:     # closed after a loss: never sum fewer replicas
            raise PeerLost("this worker's links are closed")
        grads, loss, y_pred = item
        arrays = [*grads, np.asarray(loss), *([] if y_pred is None else [y_pred])]
        payload = b"".join(np.ascontiguousarray(a).reshape(-1).view(np.uint8) for a in arrays)
        message = _HEADER.pack(len(payload)) + payload
        sent = [self._sender.submit(s.sendall, message) for s in self.links.values()]
        items, header = {rank: item}, bytearray(_HEADER.size)
        stop = lambda: self.aborted        # noqa: E731
        for peer, s in self.links.items():
            _recv_exact(s, memoryview(header), stop, self._poll)
            (size,) = _HEADER.unpack(header)
            if size != len(payload):
                raise ValueError(f"webtensor.distribute: worker {peer} sent {size} bytes for a step, expected "
                                 f"{len(payload)} (the workers run different programs)")
            body = bytearray(size)
            _recv_exact(s, memoryview(body), stop, self._poll)
            parts, at = [], 0
            for a in arrays:
                parts.append(np.frombuffer(body, a.dtype, a.size, at).reshape(a.shape))
                at += a.nbytes
            items[peer] = (parts[:len(grads)], parts[len(grads)], parts[len(grads) + 1] if y_pred is not None else None)
        for f in sent:
            try:
                f.result()
            except OSError as e:
                raise PeerLost(f"link lost: {e}") from None
        return [items[i] for i in range(len(self.links) + 1)]

    def close_links(self) -> None:
        """Close every link (:meth:`exchange` then raises :class:`PeerLost` until :meth:`connect`)."""
        for s in self.links.values():
            s.close()
        self.links = {}
