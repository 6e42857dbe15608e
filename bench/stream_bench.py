"""Tags/s delivered to remote ``CustomMeasurement`` subscribers through taggerhub, against the local rate.

Anchor: the vendor's TimeTaggerRPC cannot serve a CustomMeasurement at all (its client has no
``CustomMeasurement``; the measurement would have to run in the server process), so the anchor is
the same CustomMeasurement run in-process on the simulator ("local"), on the same lab. Rounds are
interleaved A, B, A, B: local, one remote subscriber, four remote subscribers (four processes),
and the transport alone (the bulk path ``hub_stream_read`` uses, reading a prepared recording:
no generation) beside a raw loopback socket moving the same bytes.

The lab: ``--rate`` tags/s of Poisson light on eight channels (default 32 M/s). With the virtual
clock (default) the simulator runs as fast as it can, so "generated" is the engine's speed and
"delivered" what reached the subscribers; ``--sustain S`` adds a wall-clock run of S seconds at
``--rate`` with one subscriber, for the zero-loss goal.

    python bench/stream_bench.py                      # 3 rounds of 5 s each
    python bench/stream_bench.py --sustain 30         # plus 30 s on the wall clock
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loopback import free_port, wait_for_port
from rpc_bench import raw_socket_numbers

CHANNELS = list(range(1, 9))
SECOND = 10**12
TRANSPORT_BYTES = 16 * 1024 * 1024
PREPARED = "prepared.bin"


def write_lab(path: Path, rate_hz: float) -> Path:
    lines = ['[[device]]', 'serial = "2138000FAST"', 'model = "Time Tagger Ultra"', '']
    for channel in CHANNELS:
        lines += ['[[device.source]]', 'kind = "poisson"', f'channel = {channel}', f'rate_hz = {rate_hz / 8}', '']
    path.write_text("\n".join(lines))
    return path


def counting_class(base: Any) -> type:
    class CountTags(base):
        """Counts every tag and the records that mark lost ones; the cheapest possible process()."""

        def __init__(self, tagger: Any):
            super().__init__(tagger)
            self.tags = 0
            self.missed = 0
            for channel in CHANNELS:
                self.register_channel(channel)
            self.finalize_init()

        def process(self, incoming_tags: Any, begin_time: int, end_time: int) -> None:
            self.tags += incoming_tags.size
            if incoming_tags.size and incoming_tags["type"][-1] == 3:  # OverflowEnd closes a marked gap
                self.missed += int(incoming_tags["missed_events"][incoming_tags["type"] == 4].sum())

    return CountTags


def window(measurement: Any, seconds: float) -> tuple[float, int]:
    """Tags/s delivered to ``measurement`` over ``seconds`` of wall time (after a 0.5 s warm-up)."""
    time.sleep(0.5)
    with measurement.mutex:
        before, t0 = measurement.tags, time.perf_counter()
    time.sleep(seconds)
    with measurement.mutex:
        after, t1 = measurement.tags, time.perf_counter()
    return (after - before) / (t1 - t0), measurement.missed


def local_rate(lab: Path, seconds: float) -> float:
    """The anchor: the same CustomMeasurement on the simulator in this process (run in a child)."""
    import taggerhub.sim as sim

    sim.configure(str(lab), clock="virtual")
    tagger = sim.createTimeTagger()
    measurement = counting_class(sim.CustomMeasurement)(tagger)
    rate, _ = window(measurement, seconds)
    measurement.stop()
    sim.freeTimeTagger(tagger)
    return rate


def remote_subscriber(port: int, seconds: float, ready: Any, go: Any, out: Any) -> None:
    from taggerhub import client

    TT = client.createProxy(host="127.0.0.1", port=port)
    measurement = counting_class(TT.CustomMeasurement)(TT.createTimeTagger())
    ready.wait()
    go.wait()
    rate, missed = window(measurement, seconds)
    state = TT.hub_stream_state(measurement._pump.stream_id)
    out.put((rate, missed, state["tags_lost"]))
    measurement.stop()


def remote_rate(port: int, subscribers: int, seconds: float) -> tuple[float, int, float]:
    """Tags/s delivered to ``subscribers`` processes together, tags lost, and the engine's speed meanwhile."""
    from taggerhub import client

    ctx = mp.get_context("spawn")
    ready, go, out = ctx.Barrier(subscribers + 1), ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=remote_subscriber, args=(port, seconds, ready, go, out)) for _ in range(subscribers)]
    for proc in procs:
        proc.start()
    ready.wait()
    generated = generation_speed(client.createProxy(host="127.0.0.1", port=port), seconds, go)
    results = [out.get(timeout=seconds + 120) for _ in procs]
    for proc in procs:
        proc.join(30)
    return sum(r[0] for r in results), sum(r[2] for r in results), generated


def generation_speed(TT: Any, seconds: float, go: Any = None) -> float:
    """Tags/s the server's engine generates: simulated seconds per wall second x the lab's rate."""
    tagger = TT.createTimeTagger()
    rate = TT.Countrate(tagger, [1])
    if go is not None:
        go.set()
    time.sleep(0.5)
    c0, t0 = rate.getCaptureDuration(), time.perf_counter()
    time.sleep(seconds)
    c1, t1 = rate.getCaptureDuration(), time.perf_counter()
    for proxy in (rate, tagger, TT):  # the session ends, the Countrate is freed: the engine rests
        proxy._pyroRelease()
    return (c1 - c0) / SECOND / (t1 - t0)


def transport_rate(port: int, budget_s: float) -> float:
    """MB/s of the bulk read path from a prepared file of tags (no generation): hub_recording_read."""
    from taggerhub import client

    TT = client.createProxy(host="127.0.0.1", port=port)
    times = []
    deadline = time.monotonic() + budget_s
    while len(times) < 3 or time.monotonic() < deadline:
        t0 = time.perf_counter()
        data = TT.hub_recording_read(PREPARED, 0, TRANSPORT_BYTES)
        times.append(time.perf_counter() - t0)
    TT._pyroRelease()
    assert data.nbytes == TRANSPORT_BYTES
    return data.nbytes / statistics.median(times) / 1e6


def start_server(lab: Path, clock: str, recordings: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = {**os.environ, "TAGGERHUB_SIMULATOR_CONFIG_FILE": str(lab), "TAGGERHUB_SIMULATOR_CLOCK": clock,
           "TAGGERHUB_SERVER_RECORDINGS_DIR": str(recordings), "TAGGERHUB_SERVER_LOG_LEVEL": "WARNING"}
    proc = subprocess.Popen([sys.executable, "-m", "taggerhub", "serve", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port)
    return proc, port


def sustained(lab: Path, scratch: Path, seconds: float, rate_hz: float) -> None:
    proc, port = start_server(lab, "realtime", scratch / "rec-rt")
    try:
        delivered, lost, speed = remote_rate(port, 1, seconds)
        print(f"wall clock, {seconds:.0f} s at {rate_hz / 1e6:.0f} M tags/s: delivered {delivered / 1e6:.1f} M tags/s, "
              f"lost {lost} tags, engine at {speed:.2f}x real time ({speed * rate_hz / 1e6:.1f} M tags/s generated)")
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=32e6, help="lab tags/s, on eight channels (default 32e6)")
    parser.add_argument("--seconds", type=float, default=5.0, help="wall seconds per measurement (default 5)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--sustain", type=float, default=0.0, help="also a wall-clock run of this many seconds")
    parser.add_argument("--sustain-rate", type=float, default=0.0, help="its lab tags/s (default: --rate)")
    args = parser.parse_args()
    ctx = mp.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="stream-bench-") as scratch_name:
        scratch = Path(scratch_name)
        lab = write_lab(scratch / "lab.toml", args.rate)
        prepared = scratch / "rec" / "anonymous" / PREPARED
        prepared.parent.mkdir(parents=True)
        prepared.write_bytes(os.urandom(TRANSPORT_BYTES))  # stands for tags: the transport does not look
        proc, port = start_server(lab, "virtual", scratch / "rec")
        rows: dict[str, list[float]] = {k: [] for k in ("local", "remote1", "remote4", "engine1", "engine4",
                                                         "lost1", "lost4", "transport", "raw")}
        try:
            for _ in range(args.rounds):
                with ctx.Pool(1) as pool:  # the anchor in a fresh process, as a lab script would run
                    rows["local"].append(pool.apply(local_rate, (lab, args.seconds)))
                rate, lost, speed = remote_rate(port, 1, args.seconds)
                rows["remote1"].append(rate), rows["lost1"].append(lost), rows["engine1"].append(speed * args.rate)
                rate, lost, speed = remote_rate(port, 4, args.seconds)
                rows["remote4"].append(rate), rows["lost4"].append(lost), rows["engine4"].append(speed * args.rate)
                rows["transport"].append(transport_rate(port, 2.0))
                rows["raw"].append(raw_socket_numbers([TRANSPORT_BYTES], 2.0, 10)[0][TRANSPORT_BYTES])
        finally:
            proc.terminate()
            proc.wait(10)
        med = {k: statistics.median(v) for k, v in rows.items()}
        print(f"lab {args.rate / 1e6:.0f} M tags/s on 8 channels, virtual clock, {args.rounds} rounds of "
              f"{args.seconds:.0f} s, load {os.getloadavg()[0]:.1f}")
        print(f"local CustomMeasurement (anchor)   {med['local'] / 1e6:7.2f} M tags/s  "
              f"{[round(v / 1e6, 2) for v in rows['local']]}")
        print(f"remote, 1 subscriber               {med['remote1'] / 1e6:7.2f} M tags/s  "
              f"{[round(v / 1e6, 2) for v in rows['remote1']]}  lost {rows['lost1']}  "
              f"engine {med['engine1'] / 1e6:.1f} M/s")
        print(f"remote, 4 subscribers together     {med['remote4'] / 1e6:7.2f} M tags/s  "
              f"{[round(v / 1e6, 2) for v in rows['remote4']]}  lost {rows['lost4']}  "
              f"engine {med['engine4'] / 1e6:.1f} M/s")
        print(f"transport alone (bulk read path)   {med['transport']:7.0f} MB/s = "
              f"{med['transport'] / 16:.1f} M tags/s; raw loopback {med['raw']:.0f} MB/s "
              f"({med['transport'] / med['raw']:.0%})")
        if args.sustain:
            rate = args.sustain_rate or args.rate
            sustained(write_lab(scratch / "lab-sustain.toml", rate), scratch, args.sustain, rate)
    return 0


if __name__ == "__main__":
    sys.exit(main())
