"""Large arrays arrive intact over a live server; many client processes share one tagger."""

from __future__ import annotations

import multiprocessing as mp
import time

import numpy as np
import pytest

from taggerhub import client


def test_large_arrays_arrive_intact_with_every_serializer(hub):
    TT = client.createProxy(port=hub.port)
    tagger = TT.createTimeTagger()
    n_bins, binwidth = 3_000_000, 7
    corr = TT.Correlation(tagger, 1, 2, binwidth=binwidth, n_bins=n_bins)
    half = binwidth * n_bins // 2
    expected = np.arange(n_bins, dtype=np.int64) * binwidth - half + binwidth // 2
    np.testing.assert_array_equal(corr.getIndex(), expected)
    for serializer in ("msgpack", "serpent"):
        other = client.Proxy(corr._pyroUri, serializer=serializer)
        np.testing.assert_array_equal(other.getIndex(), expected)


def _client_process(port: int, uri: str, seconds: float, out: mp.Queue) -> None:
    try:
        TT = client.createProxy(port=port)
        tagger = TT.createTimeTagger()
        rate = TT.Countrate(tagger, [1])
        shared = client.Proxy(uri)
        deadline = time.monotonic() + seconds
        calls = 0
        while time.monotonic() < deadline:
            assert shared.getSerial() == tagger.getSerial()
            rate.getData()
            calls += 1
        out.put(("ok", calls))
    except Exception as exc:  # reported to the parent
        out.put(("error", f"{type(exc).__name__}: {exc}"))


@pytest.mark.slow
def test_fifty_client_processes_share_one_tagger(server):
    TT = client.createProxy(port=server.port)
    tagger = TT.createTimeTagger()
    baseline = TT.hub_status()["objects"]
    ctx = mp.get_context("fork")
    queue: mp.Queue = ctx.Queue()
    procs = [ctx.Process(target=_client_process, args=(server.port, str(tagger._pyroUri), 3.0, queue))
             for _ in range(50)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
    failures = [r for r in results if r[0] != "ok"]
    assert not failures, failures[:3]
    assert all(calls > 0 for _, calls in results)
    deadline = time.monotonic() + 15
    while TT.hub_status()["objects"] != baseline and time.monotonic() < deadline:
        time.sleep(0.1)
    assert TT.hub_status()["objects"] == baseline


def _hold_connections(uri: str, count: int, hold_s: float, out: mp.Queue) -> None:
    proxies, failures = [], []
    for _ in range(count):
        try:
            proxy = client.Proxy(uri)
            proxy.getSerial()
            proxies.append(proxy)
        except Exception as exc:
            failures.append(f"{type(exc).__name__}: {exc}")
    time.sleep(hold_s)
    out.put((len(proxies), failures))


@pytest.mark.slow
def test_two_hundred_connections_at_once_are_all_served(server):
    TT = client.createProxy(port=server.port)
    uri = str(TT.createTimeTagger()._pyroUri)
    ctx = mp.get_context("fork")
    queue: mp.Queue = ctx.Queue()
    procs = [ctx.Process(target=_hold_connections, args=(uri, 50, 4.0, queue)) for _ in range(4)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
    assert sum(n for n, _ in results) == 200, [f for _, f in results if f][:3]
