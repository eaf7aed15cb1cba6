"""webtensor.distribute's worker-to-worker links (mesh.py), without Ray: three meshes in threads of
this process exchange items bitwise; a stranger without the token is turned away; a peer that
closes its links, an abort, or a message of another length is a clear error, not a hang."""
from __future__ import annotations

import socket
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from webtensor.distribute.mesh import Mesh, PeerLost

TOKEN = b"0123456789abcdef"


def linked(n, token=TOKEN, before_connect=None):
    meshes = [Mesh(poll=0.05) for _ in range(n)]
    addresses = [m.listen("127.0.0.1") for m in meshes]
    if before_connect is not None:
        before_connect(addresses)
    with ThreadPoolExecutor(n) as pool:
        list(pool.map(lambda r: meshes[r].connect(r, addresses, token, timeout=10), range(n)))
    return meshes


def item(r, rows=3):
    rng = np.random.default_rng(r)
    return ([rng.standard_normal(7).astype(np.float32)], np.float32(r + 0.5), rng.standard_normal((rows, 2)).astype(np.float32))


def test_three_workers_exchange_bitwise_and_strangers_are_turned_away():
    strangers = []

    def stranger(addresses):     # dials worker 0 first, with a wrong token
        s = socket.create_connection(addresses[0])
        s.sendall(b"x" * 16 + (2).to_bytes(4, "little"))
        strangers.append(s)
    meshes = linked(3, before_connect=stranger)
    for step in range(3):
        with ThreadPoolExecutor(3) as pool:
            got = list(pool.map(lambda r: meshes[r].exchange(r, item(r + step)), range(3)))
        for r in range(3):
            for peer in range(3):
                want = item(peer + step)
                np.testing.assert_array_equal(got[r][peer][0][0], want[0][0])
                assert got[r][peer][1] == want[1]
                np.testing.assert_array_equal(got[r][peer][2], want[2])
    assert strangers[0].recv(1) == b""          # closed by worker 0
    for m in meshes:
        m.close_links()


def test_lost_peer_abort_and_wrong_length_are_errors():
    a, b = linked(2)
    b.close_links()                         # the peer died
    with pytest.raises(PeerLost):
        a.exchange(0, item(0))
    a.close_links()                         # a closed mesh never sums this worker's item alone
    with pytest.raises(PeerLost, match="closed"):
        a.exchange(0, item(0))
    a, b = linked(2)
    a.aborted = True                        # the coordinator aborted; the peer is silent
    with pytest.raises(PeerLost, match="aborted"):
        a.exchange(0, item(0))
    a, b = linked(2)
    def peer():
        with pytest.raises(ValueError):         # it gets the other's message of another length, too
            b.exchange(1, item(1, rows=4))
    t = threading.Thread(target=peer, daemon=True)
    t.start()
    with pytest.raises(ValueError, match="different programs"):
        a.exchange(0, item(0, rows=3))
    t.join(10)
    for m in (a, b):
        m.close_links()
