"""RPC benchmark: taggerhub against the vendor's TimeTaggerRPC server on the same simulator backend.

Starts both servers as subprocesses on loopback (the vendor server with
``sys.modules['TimeTagger']`` pointed at ``taggerhub.sim``), then measures, in
one run and side by side:

- small-call latency (``getSerial``), p50 and p99;
- bulk ``getData`` throughput for arrays of 8 KB to 80 MB, and a plain Python
  socket on loopback moving the same bytes (the ceiling);
- aggregate calls/s and p99 latency with 1, 8 and 32 client processes;
- 200 clients connected at once (taggerhub only: the goal is no refusals).

Usage: ``python bench/rpc_bench.py [--quick] [--markdown] [--parts latency,bulk,aggregate,many]
[--processes 1,8,32]``.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from loopback import free_port, wait_for_port

SIZES = [8 * 1024, 80 * 1024, 800 * 1024, 8 * 1024**2, 80 * 1024**2]


@contextmanager
def servers() -> Iterator[dict[str, int]]:
    ports = {"taggerhub": free_port(), "vendor": free_port()}
    env = {**os.environ, "TAGGERHUB_SERVER_LOG_LEVEL": "WARNING"}
    procs = [
        subprocess.Popen([sys.executable, "-m", "taggerhub", "serve", "--host", "127.0.0.1",
                          "--port", str(ports["taggerhub"])], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        subprocess.Popen([sys.executable, "-m", "taggerhub.sim.vendor_rpc", "--host", "127.0.0.1",
                          "--port", str(ports["vendor"])], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
    ]
    try:
        for port in ports.values():
            wait_for_port(port)
        yield ports
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


def library(kind: str, port: int):
    if kind == "taggerhub":
        from taggerhub import client

        return client.createProxy(host="127.0.0.1", port=port)
    from TimeTaggerRPC import client as vendor_client

    return vendor_client.createProxy(host="127.0.0.1", port=port)


def object_proxy(kind: str, uri: str):
    if kind == "taggerhub":
        from taggerhub import client
        from taggerhub.wire import codecs

        codecs.install()
        return client.Proxy(uri)
    from Pyro5.api import Proxy
    from TimeTaggerRPC import helper

    helper.register_numpy_handler()
    return Proxy(uri)


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return ordered[len(ordered) // 2], ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def measure_latency(call: Callable[[], object], n: int) -> tuple[float, float]:
    for _ in range(min(200, n)):
        call()
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        call()
        samples.append(time.perf_counter() - t0)
    return percentiles(samples)


def measure_bulk(call: Callable[[], np.ndarray], nbytes: int, budget_s: float) -> float:
    """Median MB/s of ``call`` returning ``nbytes``, repeated within the time budget."""
    data = call()
    assert data.nbytes == nbytes, (data.nbytes, nbytes)
    times = []
    deadline = time.monotonic() + budget_s
    while len(times) < 3 or (time.monotonic() < deadline and len(times) < 200):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return nbytes / statistics.median(times) / 1e6


# -- raw loopback socket: the ceiling ---------------------------------------------------
def raw_socket_server(listener: socket.socket, payload: memoryview) -> None:
    conn, _ = listener.accept()
    with conn:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while True:
            header = conn.recv(8, socket.MSG_WAITALL)
            if len(header) < 8:
                return
            size = int.from_bytes(header, "big")
            conn.sendall(payload[:size])


def raw_socket_numbers(sizes: list[int], budget_s: float, pings: int) -> tuple[dict[int, float], float]:
    payload = memoryview(bytearray(max(sizes)))
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    thread = threading.Thread(target=raw_socket_server, args=(listener, payload), daemon=True)
    thread.start()
    sock = socket.create_connection(listener.getsockname())
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buffer = bytearray(max(sizes))

    def fetch(size: int) -> None:
        sock.sendall(size.to_bytes(8, "big"))
        view = memoryview(buffer)[:size]
        got = 0
        while got < size:
            got += sock.recv_into(view[got:], size - got)

    results = {}
    for size in sizes:
        fetch(size)
        times = []
        deadline = time.monotonic() + budget_s
        while len(times) < 3 or (time.monotonic() < deadline and len(times) < 200):
            t0 = time.perf_counter()
            fetch(size)
            times.append(time.perf_counter() - t0)
        results[size] = size / statistics.median(times) / 1e6
    p50, _ = measure_latency(lambda: fetch(64), pings)
    sock.close()
    listener.close()
    return results, p50


# -- aggregate load from many processes -------------------------------------------------
def load_worker(kind: str, uri: str, duration_s: float, ready: Any, start_at: Any, out: mp.Queue) -> None:
    proxy = object_proxy(kind, uri)
    proxy.getSerial()
    ready.release()
    deadline = time.time() + 300
    while start_at.value == 0.0 and time.time() < deadline:
        time.sleep(0.005)
    while time.time() < start_at.value:
        time.sleep(0.001)
    samples = []
    end = start_at.value + duration_s
    while time.time() < end:
        t0 = time.perf_counter()
        proxy.getSerial()
        samples.append(time.perf_counter() - t0)
    out.put(samples)


def measure_aggregate(kind: str, uri: str, processes: int, duration_s: float) -> tuple[float, float]:
    """All client processes start calling at once, after every one of them has connected."""
    ctx = mp.get_context("spawn")
    queue: mp.Queue = ctx.Queue()
    ready = ctx.Semaphore(0)
    start_at = ctx.Value("d", 0.0)
    workers = [ctx.Process(target=load_worker, args=(kind, uri, duration_s, ready, start_at, queue))
               for _ in range(processes)]
    for w in workers:
        w.start()
    for _ in workers:
        if not ready.acquire(timeout=300):
            raise RuntimeError("a load worker did not connect within 300 s")
    start_at.value = time.time() + 0.5
    samples: list[float] = []
    for _ in workers:
        samples.extend(queue.get(timeout=120 + duration_s))
    for w in workers:
        w.join(30)
    _, p99 = percentiles(samples)
    return len(samples) / duration_s, p99


def many_clients_worker(port: int, uri: str, count: int, hold_s: float, out: mp.Queue) -> None:
    from taggerhub import client

    ok, failures, proxies = 0, [], []
    for _ in range(count):
        try:
            proxy = client.Proxy(uri)
            proxy.getSerial()
            proxies.append(proxy)
            ok += 1
        except Exception as exc:
            failures.append(f"{type(exc).__name__}: {exc}")
    time.sleep(hold_s)  # keep all connections open at once
    for proxy in proxies:
        proxy.getSerial()
    out.put((ok, failures))


def measure_many_clients(port: int, uri: str, total: int = 200, processes: int = 4) -> tuple[int, list[str]]:
    ctx = mp.get_context("spawn")
    queue: mp.Queue = ctx.Queue()
    workers = [ctx.Process(target=many_clients_worker, args=(port, uri, total // processes, 3.0, queue))
               for _ in range(processes)]
    for w in workers:
        w.start()
    ok, failures = 0, []
    for _ in workers:
        n, f = queue.get(timeout=120)
        ok += n
        failures.extend(f)
    for w in workers:
        w.join(30)
    return ok, failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="shorter runs (smoke test of the script)")
    parser.add_argument("--markdown", action="store_true", help="print the results as a markdown table")
    parser.add_argument("--parts", default="latency,bulk,aggregate,many",
                        help="comma-separated parts to run (default: all of latency,bulk,aggregate,many)")
    parser.add_argument("--processes", default="", help="client process counts for the aggregate part, e.g. 32")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    n_latency = 500 if args.quick else 3000
    bulk_budget = 0.5 if args.quick else 2.0
    agg_duration = 2.0 if args.quick else 5.0
    client_counts = [1, 8] if args.quick else [1, 8, 32]
    if args.processes:
        client_counts = [int(n) for n in args.processes.split(",")]

    rows: list[tuple[str, str, str, str]] = []  # metric, taggerhub, vendor, ratio

    def add(metric: str, ours: float, theirs: float, unit: str, better: str = "higher") -> None:
        ratio = ours / theirs if better == "higher" else theirs / ours
        rows.append((metric, f"{ours:,.1f} {unit}", f"{theirs:,.1f} {unit}", f"{ratio:,.2f}x"))

    with servers() as ports:
        libs = {kind: library(kind, port) for kind, port in ports.items()}
        taggers = {kind: lib.createTimeTagger() for kind, lib in libs.items()}
        uris = {kind: str(t._pyroUri) for kind, t in taggers.items()}

        if "latency" in parts:
            lat = {kind: measure_latency(taggers[kind].getSerial, n_latency) for kind in libs}
            add("getSerial p50", lat["taggerhub"][0] * 1e6, lat["vendor"][0] * 1e6, "us", better="lower")
            add("getSerial p99", lat["taggerhub"][1] * 1e6, lat["vendor"][1] * 1e6, "us", better="lower")

        if "bulk" in parts:
            raw, raw_ping = raw_socket_numbers(SIZES, bulk_budget, n_latency)
            for size in SIZES:
                speeds = {}
                for kind, lib in libs.items():
                    corr = lib.Correlation(taggers[kind], 1, 2, binwidth=1, n_bins=size // 4)
                    corr.stop()
                    speeds[kind] = measure_bulk(corr.getData, size, bulk_budget)
                    del corr
                label = f"{size // 1024} KB" if size < 1024**2 else f"{size // 1024**2} MB"
                add(f"getData {label}", speeds["taggerhub"], speeds["vendor"], "MB/s")
                rows.append((f"  raw socket {label}", f"{raw[size]:,.1f} MB/s",
                             f"taggerhub at {speeds['taggerhub'] / raw[size]:.0%}", ""))
            rows.append(("raw socket ping-pong p50", f"{raw_ping * 1e6:,.1f} us", "", ""))

        if "aggregate" in parts:
            for n in client_counts:
                agg = {kind: measure_aggregate(kind, uris[kind], n, agg_duration) for kind in libs}
                add(f"calls/s, {n} processes", agg["taggerhub"][0], agg["vendor"][0], "/s")
                add(f"  p99, {n} processes", agg["taggerhub"][1] * 1e3, agg["vendor"][1] * 1e3, "ms",
                    better="lower")

        if "many" in parts:
            ok, failures = measure_many_clients(ports["taggerhub"], uris["taggerhub"])
            rows.append(("200 clients at once (taggerhub)", f"{ok} connected", f"{len(failures)} refused",
                         failures[0] if failures else ""))
        rows.append(("load average (1 min) at the end", f"{os.getloadavg()[0]:.1f}", "", ""))

    header = ("metric", "taggerhub", "TimeTaggerRPC", "ratio")
    width = [max(len(r[i]) for r in [*rows, header]) for i in range(4)]
    if args.markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "|".join("---" for _ in header) + "|")
        for r in rows:
            print("| " + " | ".join(r) + " |")
    else:
        print("  ".join(h.ljust(w) for h, w in zip(header, width, strict=True)))
        for r in rows:
            print("  ".join(c.ljust(w) for c, w in zip(r, width, strict=True)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
