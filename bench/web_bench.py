"""What the live lab page costs the server: CPU per open page, and RPC clients' p99 with 20 pages open.

Starts ``taggerhub serve`` (simulator on the wall clock, auth on) and ``taggerhub web`` as
processes, and a plain RPC client that keeps one Countrate running, so the simulator's own
work (10 MHz of tags on channel 3) is in the baseline and not charged to the pages. Pages
are WebSocket clients that log in with a token and read every message, as the browser's
script does (a browser's drawing costs the lab PC it runs on, not the server). Server CPU
comes from /proc (utime + stime) over each window.

Then an RPC client measures ``getSerial()`` latency, first with no page open, then with
``--pages`` pages, and both are printed side by side. Goals (issue 20): ≤ 2 % of one core
per page at 10 updates/s; p99 with 20 pages ≤ 1.2 x p99 without.

    .venv/bin/python bench/web_bench.py --pages 20 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from loopback import free_port, wait_for_port

TICK_S = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / TICK_S


def login(url: str, token: str) -> str:
    request = urllib.request.Request(f"{url}/api/login", data=json.dumps({"token": token}).encode(),
                                     headers={"Content-Type": "application/json", "Origin": url}, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.headers["set-cookie"].split(";")[0]


class Pages:
    """``n`` pages on one event loop (a thread): each logs in, opens /ws and reads every message."""

    def __init__(self, url: str, token: str, n: int):
        self.url, self.token, self.n = url, token, n
        self.rates = 0
        self.ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _page(self, cookie: str, opened: list[int]) -> None:
        from websockets.asyncio.client import connect

        ws_url = self.url.replace("http", "ws", 1) + "/ws"
        async with connect(ws_url, additional_headers={"Cookie": cookie, "Origin": self.url}) as ws:
            opened.append(1)
            if len(opened) == self.n:
                self.ready.set()
            assert self._stop is not None
            while not self._stop.is_set():
                try:
                    message = json.loads(await asyncio.wait_for(ws.recv(), 0.5))
                except TimeoutError:
                    continue
                if message["type"] == "rates":
                    self.rates += 1
                elif message["type"] == "fatal":
                    raise RuntimeError(message["message"])

    async def _main(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        cookie = await asyncio.to_thread(login, self.url, self.token)
        opened: list[int] = []
        await asyncio.gather(*(self._page(cookie, opened) for _ in range(self.n)))

    def __enter__(self) -> Pages:
        self._thread.start()
        if not self.ready.wait(60):
            raise RuntimeError(f"{self.n} pages did not open within 60 s")
        time.sleep(1.5)  # let every page's Countrate start and the first status pushes pass
        return self

    def __exit__(self, *_exc: object) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


def rpc_latencies(port: int, token: str, seconds: float) -> list[float]:
    """getSerial() round trips of one client for ``seconds``, back to back, in seconds."""
    from taggerhub import client

    TT = client.createProxy(port=port, token=token)
    tagger = TT.createTimeTagger()
    times = []
    end = time.perf_counter() + seconds
    while (start := time.perf_counter()) < end:
        tagger.getSerial()
        times.append(time.perf_counter() - start)
    TT._pyroRelease()
    return times


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def window(server: subprocess.Popen, web: subprocess.Popen, seconds: float) -> tuple[float, float]:
    """CPU fraction of one core used by the server and by the web process over ``seconds``."""
    s0, w0, t0 = cpu_s(server.pid), cpu_s(web.pid), time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - t0
    return (cpu_s(server.pid) - s0) / elapsed, (cpu_s(web.pid) - w0) / elapsed


def run(args: argparse.Namespace) -> None:
    from taggerhub import client
    from taggerhub.access.users import UserStore

    tmp = Path(tempfile.mkdtemp(prefix="web-bench-"))
    store = UserStore(tmp / "users.toml")
    token = store.add("bench", "operator")
    port, web_port = free_port(), free_port()
    env = {**os.environ, "TAGGERHUB_AUTH_ENABLED": "true", "TAGGERHUB_AUTH_USERS_FILE": str(tmp / "users.toml"),
           "TAGGERHUB_AUTH_MAX_CONNECTIONS_PER_USER": str(8 * args.pages + 16)}
    logs = open(tmp / "processes.log", "w")  # noqa: SIM115 - closed at the end
    server = subprocess.Popen([sys.executable, "-m", "taggerhub", "serve", "--port", str(port)], env=env,
                              stdout=logs, stderr=subprocess.STDOUT)
    web = subprocess.Popen([sys.executable, "-m", "taggerhub", "web", "--listen", f"127.0.0.1:{web_port}",
                            "--server", f"127.0.0.1:{port}", "--update-hz", str(args.update_hz)], env=env,
                           stdout=logs, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port)
        wait_for_port(web_port)
        url = f"http://127.0.0.1:{web_port}"
        TT = client.createProxy(port=port, token=token)  # keeps the simulator busy in every window
        keep = TT.Countrate(TT.createTimeTagger(), [1, 2, 3, 4, 5, 6, 7, 8])
        time.sleep(1.0)
        base_server, base_web = window(server, web, args.seconds)
        # The latency client runs in its own process: in this one it would share the GIL with the page readers.
        spawn = mp.get_context("spawn")
        with spawn.Pool(1) as pool:
            quiet = pool.apply(rpc_latencies, (port, token, args.seconds))
        rows = []
        for n in sorted({max(1, args.pages // 4), args.pages}):
            with Pages(url, token, n) as pages:
                before = pages.rates
                srv, wb = window(server, web, args.seconds)
                per_s = (pages.rates - before) / args.seconds / n
                with spawn.Pool(1) as pool:
                    busy = pool.apply(rpc_latencies, (port, token, args.seconds)) if n == args.pages else []
            rows.append((n, srv, wb, per_s, busy))
        keep.getData()
    finally:
        for proc in (web, server):
            proc.terminate()
            proc.wait(10)
        logs.close()

    print(f"baseline (no page; one RPC client's Countrate keeps the simulator busy): server "
          f"{base_server:.1%} of a core, web process {base_web:.1%}")
    print()
    print("| pages | updates/s per page | server CPU | per page (server) | web process CPU | per page (web) |")
    print("|---|---|---|---|---|---|")
    for n, srv, wb, per_s, _ in rows:
        print(f"| {n} | {per_s:.1f} | {srv:.1%} | {(srv - base_server) / n:.2%} | {wb:.1%} | "
              f"{(wb - base_web) / n:.2%} |")
    busy = rows[-1][4]
    print()
    print("| getSerial() from an RPC client | no page open | "
          f"{args.pages} pages open | ratio |")
    print("|---|---|---|---|")
    for name, q in (("p50", 0.5), ("p99", 0.99)):
        a, b = sorted(quiet)[round(q * (len(quiet) - 1))], sorted(busy)[round(q * (len(busy) - 1))]
        print(f"| {name} | {a * 1e6:.0f} us | {b * 1e6:.0f} us | {b / a:.2f}x |")
    print(f"| calls | {len(quiet)} | {len(busy)} |  |")
    per_page = (rows[-1][1] - base_server) / rows[-1][0]
    ratio = p99(busy) / p99(quiet)
    print()
    print(f"goal ≤ 2 % of a core per page: {'met' if per_page <= 0.02 else 'missed'} ({per_page:.2%} with "
          f"{rows[-1][0]} pages); goal p99 ≤ 1.2x: {'met' if ratio <= 1.2 else 'missed'} ({ratio:.2f}x); "
          f"load average {os.getloadavg()[0]:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each measuring window")
    parser.add_argument("--update-hz", type=float, default=10.0)
    args = parser.parse_args()
    if args.pages < 1:
        parser.error("--pages must be at least 1")
    run(args)


if __name__ == "__main__":
    main()
