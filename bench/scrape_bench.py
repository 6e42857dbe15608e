"""Scrape time of `taggerhub exporter` while many clients poll the server.

Starts a simulator server, an exporter, and N client processes that each poll
their own Countrate (``getData()``) at a fixed interval (0: as fast as they
can), then fetches /metrics over HTTP again and again and prints the scrape
latency percentiles. Goal: p99 under 50 ms with 32 clients.

``--taggers N`` serves N simulated taggers instead of the default lab (each with a
10 kHz Poisson source on every watched channel) and opens them all, so the exporter
watches N taggers: how the scrape time grows with the taggers of one PC.

    .venv/bin/python bench/scrape_bench.py --clients 32 --interval 0.05 --scrapes 300
    .venv/bin/python bench/scrape_bench.py --clients 0 --taggers 4 --scrapes 300
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from loopback import free_port, wait_for_port


def poller(port: int, interval_s: float, nice: int, stop: mp.Event, ready: mp.Barrier, calls: mp.Value) -> None:
    """One client: its own session, tagger proxy and Countrate, polled until ``stop``."""
    from taggerhub import client

    if nice:
        os.nice(nice)

    TT = client.createProxy(port=port)
    tagger = TT.createTimeTagger()
    rate = TT.Countrate(tagger, [1, 2])
    ready.wait(120)
    n = 0
    while not stop.is_set():
        rate.getData()
        n += 1
        if interval_s:
            stop.wait(interval_s)
    with calls.get_lock():
        calls.value += n
    TT._pyroRelease()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def scrape_series(url: str, scrapes: int, pause_s: float) -> tuple[list[float], list[float], float]:
    """HTTP scrape times, and the part the exporter spent asking the server (its own gauge)."""
    times, inner = [], []
    started = time.monotonic()
    for _ in range(scrapes):
        t0 = time.perf_counter()
        with urllib.request.urlopen(url, timeout=10) as response:
            body = response.read()
        times.append(time.perf_counter() - t0)
        if b"taggerhub_up 1.0" not in body:
            raise RuntimeError("exporter reports taggerhub_up 0 during the benchmark")
        line = next(x for x in body.splitlines() if x.startswith(b"taggerhub_exporter_scrape_duration_seconds "))
        inner.append(float(line.split()[1]))
        time.sleep(pause_s)
    return times, inner, time.monotonic() - started


def lab_file(path: Path, taggers: int, channels: str) -> list[str]:
    """A simulator lab of ``taggers`` devices with a 10 kHz Poisson source per channel; returns their serials."""
    serials = [f"{9000000 + i}SIM" for i in range(taggers)]
    sources = "".join(f'[[device.source]]\nkind = "poisson"\nchannel = {int(c)}\nrate_hz = 10000.0\n'
                      for c in channels.split(",") if c.strip())
    path.write_text("".join(f'[[device]]\nserial = "{s}"\nmodel = "Time Tagger Ultra"\n{sources}\n'
                            for s in serials))
    return serials


def run(args: argparse.Namespace) -> None:
    from taggerhub import client

    load_before = os.getloadavg()[0]
    logs = Path(args.log_dir)
    logs.mkdir(parents=True, exist_ok=True)
    server_port, metrics_port = free_port(), free_port()
    procs = []
    serve = [sys.executable, "-m", "taggerhub", "serve", "--port", str(server_port)]
    serials = lab_file(logs / "lab.toml", args.taggers, args.channels) if args.taggers else []
    if serials:
        serve += ["--sim-config", str(logs / "lab.toml")]
    holder = None
    with open(logs / "server.log", "w") as server_log, open(logs / "exporter.log", "w") as exporter_log:
        procs.append(subprocess.Popen(serve, stdout=server_log, stderr=subprocess.STDOUT))
        wait_for_port(server_port)
        if serials:  # a user has every tagger open: the exporter watches them all
            holder = client.createProxy(port=server_port)
            for serial in serials:
                holder.createTimeTagger(serial)
        procs.append(subprocess.Popen([sys.executable, "-m", "taggerhub", "exporter",
                                       "--listen", f"127.0.0.1:{metrics_port}",
                                       "--server", f"127.0.0.1:{server_port}", "--channels", args.channels],
                                      stdout=exporter_log, stderr=subprocess.STDOUT))
        wait_for_port(metrics_port)
        url = f"http://127.0.0.1:{metrics_port}/metrics"
        stop, calls = mp.Event(), mp.Value("q", 0)
        ready = mp.Barrier(args.clients + 1) if args.clients else None
        poll_args = (server_port, args.interval, args.client_nice, stop, ready, calls)
        workers = [mp.Process(target=poller, args=poll_args, daemon=True) for _ in range(args.clients)]
        try:
            for w in workers:
                w.start()
            if ready is not None:
                ready.wait(120)
            scrape_series(url, 5, 0.05)  # connect, open the tagger, fill the first rate window
            times, inner, elapsed = scrape_series(url, args.scrapes, args.pause)
            stop.set()
            for w in workers:
                w.join(30)
        finally:
            stop.set()
            for w in workers:
                if w.is_alive():
                    w.terminate()
            if holder is not None:
                holder._pyroRelease()
            for p in procs:
                p.terminate()
                p.wait(10)
    ms = [t * 1000 for t in times]
    poll = f"{args.interval * 1000:.0f} ms" if args.interval else "flat out"
    print(f"clients={args.clients} poll={poll} client_nice={args.client_nice} scrapes={len(ms)} "
          f"channels={args.channels} taggers={args.taggers or 'default lab (1)'}")
    print(f"  machine load average (1 min) before: {load_before:.1f}, after: {os.getloadavg()[0]:.1f}")
    print(f"  client getData() calls/s during scrapes: {calls.value / elapsed:.0f}")
    print(f"  scrape ms: p50 {percentile(ms, 50):.1f}  p90 {percentile(ms, 90):.1f}  "
          f"p99 {percentile(ms, 99):.1f}  max {max(ms):.1f}  mean {statistics.fmean(ms):.1f}")
    inner_ms = [t * 1000 for t in inner]
    print(f"  of which asking the server, ms: p50 {percentile(inner_ms, 50):.1f}  p90 {percentile(inner_ms, 90):.1f}  "
          f"p99 {percentile(inner_ms, 99):.1f}  max {max(inner_ms):.1f}")
    print(f"  goal p99 < 50 ms: {'met' if percentile(ms, 99) < 50 else 'NOT met'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--interval", type=float, default=0.05, help="seconds between a client's polls (0: flat out)")
    parser.add_argument("--scrapes", type=int, default=300)
    parser.add_argument("--pause", type=float, default=0.05, help="seconds between scrapes")
    parser.add_argument("--channels", default="1,2,3,4")
    parser.add_argument("--taggers", type=int, default=0,
                        help="serve this many simulated taggers, all open (0: the default lab's one)")
    parser.add_argument("--client-nice", type=int, default=0,
                        help="run the clients at this nice level, standing in for clients on other machines")
    parser.add_argument("--log-dir", default=os.environ.get("TMPDIR", "/tmp") + "/taggerhub-scrape-bench")
    run(parser.parse_args())


if __name__ == "__main__":
    main()
