"""Tags/s delivered to remote ``CustomMeasurement`` subscribers through taggerhub, against the local rate.

Anchor: the vendor's TimeTaggerRPC cannot serve a CustomMeasurement at all (its client has no
``CustomMeasurement``; the measurement would have to run in the server process), so the anchors are
the same CustomMeasurement run in-process on the simulator ("local"), a raw loopback socket moving
the same bytes, and the vendor's quoted 26 M tags/s for its network tagger on 1 Gbit Ethernet.

The lab: ``--rate`` tags/s on eight channels (default 32 M/s), of ``--source`` kind: ``tiled``
(default: Poisson light generated for one 100 ms period and repeated, see docs/simulator.md) or
``poisson`` (fresh random numbers for every tag).

Modes:

- ``virtual`` (default): the simulator's virtual clock, as fast as it can; rounds interleaved A, B, A, B:
  local, one remote subscriber, four remote subscribers (four processes), the transport alone (the
  bulk read path from a prepared file: no generation) beside a raw loopback socket.
- ``wall``: the wall clock, the lab at its rate. Interleaved per round: A the engine alone (a Countrate
  on the eight channels), B1 one remote subscriber, B4 four together, each for ``--seconds``: tags/s
  delivered, lost (in the queue; overflows of the device), the engine's speed while they run, and where
  the CPU went (server threads by name, subscriber reader threads, time inside process()).
- ``generation``: the input stage alone in this process, Poisson against tiled, interleaved: tags/s per
  CPU second and per wall second (the cost of generating the lab, nothing else).

    python bench/stream_bench.py                                # virtual, 3 rounds of 5 s
    python bench/stream_bench.py --mode wall --seconds 30 --rounds 2
    python bench/stream_bench.py --mode generation
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
TILE_PERIOD_PS = 100_000_000_000  # 100 ms


def write_lab(path: Path, rate_hz: float, source: str = "tiled") -> Path:
    lines = ['[[device]]', 'serial = "2138000FAST"', 'model = "Time Tagger Ultra"', '']
    for channel in CHANNELS:
        poisson = f'kind = "poisson", channel = {channel}, rate_hz = {rate_hz / len(CHANNELS)}'
        if source == "tiled":
            lines += ['[[device.source]]', 'kind = "tiled"', f'period_ps = {TILE_PERIOD_PS}',
                      f'of = {{ {poisson} }}', '']
        else:
            lines += ['[[device.source]]', *poisson.replace(", ", "\n").split("\n"), '']
    path.write_text("\n".join(lines))
    return path


def counting_class(base: Any) -> type:
    class CountTags(base):
        """Counts every tag and the records that mark lost ones; the cheapest possible process()."""

        def __init__(self, tagger: Any):
            super().__init__(tagger)
            self.tags = 0
            self.missed = 0
            self.process_cpu_s = 0.0  # CPU seconds spent inside process()
            for channel in CHANNELS:
                self.register_channel(channel)
            self.finalize_init()

        def process(self, incoming_tags: Any, begin_time: int, end_time: int) -> None:
            began = time.thread_time()
            self.tags += incoming_tags.size
            if incoming_tags.size and incoming_tags["type"][-1] == 3:  # OverflowEnd closes a marked gap
                self.missed += int(incoming_tags["missed_events"][incoming_tags["type"] == 4].sum())
            self.process_cpu_s += time.thread_time() - began

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


def thread_cpu_s(pid: int, tid: int | None = None) -> dict[str, float]:
    """CPU seconds per thread name (the OS name: bench_server names Python threads) of process ``pid``."""
    ticks = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        if tid is not None and int(task.name) != tid:
            continue
        try:
            name = (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended meanwhile
            continue
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / ticks
    return out


def remote_subscriber(port: int, seconds: float, ready: Any, go: Any, out: Any) -> None:
    from taggerhub import client

    TT = client.createProxy(host="127.0.0.1", port=port)
    measurement = counting_class(TT.CustomMeasurement)(TT.createTimeTagger())
    reader = measurement._pump.thread.native_id
    ready.wait()
    go.wait()
    time.sleep(0.5)
    with measurement.mutex:
        before, t0, proc0 = measurement.tags, time.perf_counter(), measurement.process_cpu_s
    cpu0 = sum(thread_cpu_s(os.getpid(), reader).values())
    time.sleep(seconds)
    with measurement.mutex:
        after, t1, proc1 = measurement.tags, time.perf_counter(), measurement.process_cpu_s
    cpu1 = sum(thread_cpu_s(os.getpid(), reader).values())
    state = TT.hub_stream_state(measurement._pump.stream_id)
    out.put({"rate": (after - before) / (t1 - t0), "missed": measurement.missed, "lost": state["tags_lost"],
             "reader_cpu": (cpu1 - cpu0) / (t1 - t0), "process_cpu": (proc1 - proc0) / (t1 - t0)})
    measurement.stop()


def remote_rate(port: int, subscribers: int, seconds: float, server_pid: int | None = None) -> dict[str, Any]:
    """Tags/s delivered to ``subscribers`` processes together, tags lost, the engine's speed meanwhile, CPU used."""
    from taggerhub import client

    ctx = mp.get_context("spawn")
    ready, go, out = ctx.Barrier(subscribers + 1), ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=remote_subscriber, args=(port, seconds, ready, go, out)) for _ in range(subscribers)]
    for proc in procs:
        proc.start()
    ready.wait()
    server0 = thread_cpu_s(server_pid) if server_pid else {}
    TT = client.createProxy(host="127.0.0.1", port=port)
    generated, overflows = generation_speed(TT, seconds, go)
    server1 = thread_cpu_s(server_pid) if server_pid else {}
    results = [out.get(timeout=seconds + 120) for _ in procs]
    for proc in procs:
        proc.join(30)
    span = seconds + 0.5
    return {"rate": sum(r["rate"] for r in results), "lost": sum(r["lost"] for r in results),
            "missed": sum(r["missed"] for r in results), "speed": generated, "overflows": overflows,
            "reader_cpu": sum(r["reader_cpu"] for r in results), "process_cpu": sum(r["process_cpu"] for r in results),
            "server_cpu": {k: (v - server0.get(k, 0.0)) / span for k, v in server1.items()}}


def generation_speed(TT: Any, seconds: float, go: Any = None, channels: list[int] | None = None) -> tuple[float, int]:
    """The server engine's speed (simulated seconds per wall second) and the device's overflows meanwhile."""
    tagger = TT.createTimeTagger()
    rate = TT.Countrate(tagger, channels or [1])
    if go is not None:
        go.set()
    time.sleep(0.5)
    c0, t0, o0 = rate.getCaptureDuration(), time.perf_counter(), tagger.getOverflows()
    time.sleep(seconds)
    c1, t1, o1 = rate.getCaptureDuration(), time.perf_counter(), tagger.getOverflows()
    for proxy in (rate, tagger, TT):  # the session ends, the Countrate is freed: the engine rests
        proxy._pyroRelease()
    return (c1 - c0) / SECOND / (t1 - t0), o1 - o0


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


# Runs ``taggerhub serve`` with each Python thread's name given to its OS thread, so /proc tells them apart.
SERVE_WITH_THREAD_NAMES = """
import ctypes, runpy, sys, threading
libc = ctypes.CDLL(None)
inner = threading.Thread._bootstrap_inner
def named(self):
    libc.prctl(15, self.name[:15].encode(), 0, 0, 0)
    inner(self)
threading.Thread._bootstrap_inner = named
sys.argv = ["taggerhub", *sys.argv[1:]]
runpy.run_module("taggerhub", run_name="__main__")
"""


def start_server(lab: Path, clock: str, recordings: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = {**os.environ, "TAGGERHUB_SIMULATOR_CONFIG_FILE": str(lab), "TAGGERHUB_SIMULATOR_CLOCK": clock,
           "TAGGERHUB_SERVER_RECORDINGS_DIR": str(recordings), "TAGGERHUB_SERVER_LOG_LEVEL": "WARNING"}
    proc = subprocess.Popen([sys.executable, "-c", SERVE_WITH_THREAD_NAMES, "serve", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port)
    return proc, port


def generation_alone(source: str, rate_hz: float, sim_seconds: float) -> tuple[float, float]:
    """Tags/s the input stage generates for the lab on eight channels: per CPU second, per wall second."""
    import numpy as np

    from taggerhub.sim.engine import REALTIME_MAX_CHUNK_PS, InputStage
    from taggerhub.sim.lab import load_lab

    with tempfile.TemporaryDirectory() as scratch:
        spec = load_lab(write_lab(Path(scratch) / "lab.toml", rate_hz, source))[0]
    stage = InputStage(spec.model, spec.sources, np.random.default_rng(1))
    wanted = set(CHANNELS)
    stage.process(wanted, 0, REALTIME_MAX_CHUNK_PS)  # a tiled source makes its period here, once
    t, end, tags = REALTIME_MAX_CHUNK_PS, int(sim_seconds * SECOND), 0
    cpu0, wall0 = time.process_time(), time.perf_counter()
    while t < end:
        tags += sum(a.size for a in stage.process(wanted, t, t + REALTIME_MAX_CHUNK_PS).values())
        t += REALTIME_MAX_CHUNK_PS
    return tags / (time.process_time() - cpu0), tags / (time.perf_counter() - wall0)


def generation_mode(args: argparse.Namespace) -> None:
    rows: dict[str, list[tuple[float, float]]] = {"poisson": [], "tiled": []}
    for _ in range(args.rounds):
        for source in rows:  # A, B, A, B
            rows[source].append(generation_alone(source, args.rate, 2.0))
    print(f"input stage alone, lab {args.rate / 1e6:.0f} M tags/s on 8 channels, 2 s of tag time per run, "
          f"{args.rounds} rounds A,B; load {os.getloadavg()[0]:.1f}")
    for source, runs in rows.items():
        print(f"  {source:8s} per CPU s {statistics.median(r[0] for r in runs) / 1e6:6.1f} M tags/s "
              f"{[round(r[0] / 1e6, 1) for r in runs]}; per wall s {[round(r[1] / 1e6, 1) for r in runs]}")


def socket_cpu_ns_per_byte(total_bytes: int = 512 * 1024 * 1024, block: int = 16 * 1024 * 1024) -> tuple[float, float]:
    """CPU ns per byte to send and to receive over TCP loopback (each side's thread CPU): the transport's floor."""
    import socket
    import threading

    listener = socket.create_server(("127.0.0.1", 0))
    left = socket.create_connection(listener.getsockname())
    right, _ = listener.accept()
    listener.close()
    payload = memoryview(bytearray(block))
    sent: list[float] = []

    def send() -> None:
        began = time.thread_time()
        for _ in range(total_bytes // block):
            left.sendall(payload)
        sent.append(time.thread_time() - began)

    sender = threading.Thread(target=send)
    buffer = memoryview(bytearray(block))
    began = time.thread_time()
    sender.start()
    got = 0
    while got < total_bytes:
        got += right.recv_into(buffer, block)
    received = time.thread_time() - began
    sender.join()
    left.close()
    right.close()
    return sent[0] / total_bytes * 1e9, received / total_bytes * 1e9


def budget_mode(args: argparse.Namespace) -> None:
    """CPU ns per tag of each step between the lab and a remote process(), each timed alone on one thread."""
    import numpy as np

    from taggerhub.server.stream import TagQueue
    from taggerhub.sim.custom import chunk_records
    from taggerhub.sim.engine import REALTIME_MAX_CHUNK_PS, Chunk, InputStage
    from taggerhub.sim.lab import load_lab
    from taggerhub.wire.codecs import TaggerhubSerializer

    with tempfile.TemporaryDirectory() as scratch:
        spec = load_lab(write_lab(Path(scratch) / "lab.toml", args.rate, args.source))[0]
    stage = InputStage(spec.model, spec.sources, np.random.default_rng(1))
    wanted = set(CHANNELS)
    stage.process(wanted, 0, REALTIME_MAX_CHUNK_PS)
    chunks, cost = [], {"generate": 0.0, "merge into records": 0.0, "queue and batch": 0.0, "serialize": 0.0,
                        "deserialize": 0.0}
    t = REALTIME_MAX_CHUNK_PS
    for _ in range(50):  # 1 s of tags
        began = time.process_time()
        chunks.append(Chunk(t, t + REALTIME_MAX_CHUNK_PS, stage.process(wanted, t, t + REALTIME_MAX_CHUNK_PS)))
        cost["generate"] += time.process_time() - began
        t += REALTIME_MAX_CHUNK_PS
    queue, serializer, n = TagQueue(1 << 40), TaggerhubSerializer(), 0
    for chunk in chunks:
        began = time.process_time()
        records = chunk_records(chunk, CHANNELS)
        cost["merge into records"] += time.process_time() - began
        began = time.process_time()
        queue.put(records, chunk.begin_ps, chunk.end_ps)
        batch, _, _ = queue.take(64 * 1024 * 1024, 0)
        data = np.concatenate([frame for frame, _, _ in batch])
        cost["queue and batch"] += time.process_time() - began
        began = time.process_time()
        message = serializer.dumps({"tags": data, "frames": [[b, e, f.size // 16] for f, b, e in batch]})
        wire = b"".join(message.parts) if hasattr(message, "parts") else message
        cost["serialize"] += time.process_time() - began
        began = time.process_time()
        received = serializer.loads(memoryview(bytearray(wire)))
        np.frombuffer(received["tags"], dtype=records.dtype)
        cost["deserialize"] += time.process_time() - began
        n += records.size
    send_ns, recv_ns = socket_cpu_ns_per_byte()
    per_tag = {k: v / n * 1e9 for k, v in cost.items()}
    per_tag["socket send (kernel)"] = send_ns * 16
    per_tag["socket receive (kernel)"] = recv_ns * 16
    print(f"CPU per tag, lab {args.rate / 1e6:.0f} M tags/s ({args.source}) on 8 channels, {n / 1e6:.0f} M tags; "
          f"load {os.getloadavg()[0]:.1f}")
    for step, ns in per_tag.items():
        print(f"  {step:26s} {ns:6.1f} ns/tag  ({1e3 / ns if ns else float('inf'):6.0f} M tags/s per core)")
    server = sum(per_tag[k] for k in ("generate", "merge into records", "queue and batch", "serialize",
                                      "socket send (kernel)"))
    client = per_tag["deserialize"] + per_tag["socket receive (kernel)"]
    print(f"  server {server:.1f} ns/tag, client {client:.1f} ns/tag: one subscriber at most "
          f"{1e3 / max(server, client):.0f} M tags/s with a core each, {2e3 / (server + client):.0f} M tags/s on two "
          f"shared cores")


def cpu_summary(run: dict[str, Any]) -> str:
    """CPU share of each part, and its cost per tag delivered (ns of CPU per tag: what a core spends)."""
    server = sorted(((v, k) for k, v in run["server_cpu"].items() if v >= 0.01), reverse=True)
    per_tag = 1e9 / max(run["rate"], 1.0)
    names = ", ".join(f"{k} {v:.0%} = {v * per_tag:.0f} ns/tag" for v, k in server)
    return (f"server {sum(run['server_cpu'].values()):.0%} of a core ({names}); subscribers' readers "
            f"{run['reader_cpu']:.0%} = {run['reader_cpu'] * per_tag:.0f} ns/tag (of which process() "
            f"{run['process_cpu'] * per_tag:.0f} ns/tag)")


def wall_mode(args: argparse.Namespace, scratch: Path) -> None:
    lab = write_lab(scratch / "lab-wall.toml", args.rate, args.source)
    proc, port = start_server(lab, "realtime", scratch / "rec-wall")
    from taggerhub import client

    rows: dict[str, list[Any]] = {"alone": [], "one": [], "four": [], "raw": [], "load": []}
    try:
        for _ in range(args.rounds):
            rows["load"].append(os.getloadavg()[0])
            server0 = thread_cpu_s(proc.pid)
            speed, overflows = generation_speed(client.createProxy(host="127.0.0.1", port=port), args.seconds,
                                                channels=CHANNELS)
            server1 = thread_cpu_s(proc.pid)
            rows["alone"].append({"speed": speed, "overflows": overflows, "server_cpu": {
                k: (v - server0.get(k, 0.0)) / (args.seconds + 0.5) for k, v in server1.items()}})
            rows["one"].append(remote_rate(port, 1, args.seconds, proc.pid))
            rows["four"].append(remote_rate(port, 4, args.seconds, proc.pid))
            rows["raw"].append(raw_socket_numbers([TRANSPORT_BYTES], 2.0, 10)[0][TRANSPORT_BYTES])
    finally:
        proc.terminate()
        proc.wait(10)
    print(f"wall clock, lab {args.rate / 1e6:.0f} M tags/s ({args.source}) on 8 channels, {args.rounds} rounds of "
          f"A (engine alone), B1, B4, {args.seconds:.0f} s each; load {rows['load']} -> {os.getloadavg()[0]:.1f}")
    for i in range(args.rounds):
        alone, one, four = rows["alone"][i], rows["one"][i], rows["four"][i]
        print(f" round {i + 1}: raw loopback {rows['raw'][i]:.0f} MB/s = {rows['raw'][i] / 16:.0f} M tags/s; "
              f"vendor's network figure 26 M tags/s")
        print(f"  A  engine alone (Countrate on 8 ch): {alone['speed']:.2f}x real time = "
              f"{alone['speed'] * args.rate / 1e6:.1f} M tags/s generated, {alone['overflows']} overflows; "
              f"server {sum(alone['server_cpu'].values()):.0%} of a core")
        for label, run in (("B1 1 subscriber ", one), ("B4 4 subscribers", four)):
            print(f"  {label}: delivered {run['rate'] / 1e6:.1f} M tags/s, lost in queue {run['lost']}, marked "
                  f"missed {run['missed']}; engine {run['speed']:.2f}x = {run['speed'] * args.rate / 1e6:.1f} M tags/s,"
                  f" {run['overflows']} overflows")
            print(f"      CPU: {cpu_summary(run)}")


def virtual_mode(args: argparse.Namespace, scratch: Path) -> None:
    ctx = mp.get_context("spawn")
    lab = write_lab(scratch / "lab.toml", args.rate, args.source)
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
            for n, key in ((1, "1"), (4, "4")):
                run = remote_rate(port, n, args.seconds, proc.pid)
                print(f"  {n} subscriber(s): {run['rate'] / 1e6:.1f} M tags/s; CPU: {cpu_summary(run)}", flush=True)
                rows["remote" + key].append(run["rate"])
                rows["lost" + key].append(run["lost"])
                rows["engine" + key].append(run["speed"] * args.rate)
            rows["transport"].append(transport_rate(port, 2.0))
            rows["raw"].append(raw_socket_numbers([TRANSPORT_BYTES], 2.0, 10)[0][TRANSPORT_BYTES])
    finally:
        proc.terminate()
        proc.wait(10)
    med = {k: statistics.median(v) for k, v in rows.items()}
    print(f"lab {args.rate / 1e6:.0f} M tags/s ({args.source}) on 8 channels, virtual clock, {args.rounds} rounds of "
          f"{args.seconds:.0f} s, load {os.getloadavg()[0]:.1f}")
    print(f"local CustomMeasurement (anchor)   {med['local'] / 1e6:7.2f} M tags/s  "
          f"{[round(v / 1e6, 2) for v in rows['local']]}")
    for key, label in (("1", "remote, 1 subscriber            "), ("4", "remote, 4 subscribers together  ")):
        print(f"{label}   {med['remote' + key] / 1e6:7.2f} M tags/s  "
              f"{[round(v / 1e6, 2) for v in rows['remote' + key]]}  lost {rows['lost' + key]}  "
              f"engine {med['engine' + key] / 1e6:.1f} M/s")
    print(f"transport alone (bulk read path)   {med['transport']:7.0f} MB/s = "
          f"{med['transport'] / 16:.1f} M tags/s; raw loopback {med['raw']:.0f} MB/s "
          f"({med['transport'] / med['raw']:.0%})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("virtual", "wall", "generation", "budget"), default="virtual")
    parser.add_argument("--rate", type=float, default=32e6, help="lab tags/s, on eight channels (default 32e6)")
    parser.add_argument("--source", choices=("tiled", "poisson"), default="tiled", help="the lab's source kind")
    parser.add_argument("--seconds", type=float, default=5.0, help="wall seconds per measurement (default 5)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    args = parser.parse_args()
    if args.mode in ("generation", "budget"):
        (generation_mode if args.mode == "generation" else budget_mode)(args)
        return 0
    with tempfile.TemporaryDirectory(prefix="stream-bench-") as scratch_name:
        (wall_mode if args.mode == "wall" else virtual_mode)(args, Path(scratch_name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
