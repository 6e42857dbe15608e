"""Sustained tag rate of the simulator with Countrate + Counter + Correlation running at once.

The simulator runs on a virtual clock, pinned to one core, over a lab whose
sources produce ``--rate`` tags per simulated second (photon pairs plus Poisson
light on eight channels). Throughput = tags generated and processed per wall
second. A second phase runs for ``--memory-seconds`` of wall time and samples
the resident set size, which must not grow.

    python bench/sim_bench.py                 # goal: >= 20 M tags/s, flat RSS
    python bench/sim_bench.py --profile       # cProfile of the engine thread's work
    python bench/sim_bench.py --per-measurement   # tags/s each measurement type sustains alone (goal >= 10 M)

The per-measurement table feeds the same pre-generated chunks to one measurement at a time and times
only its own work (thread CPU time of its chunk handler), so the engine's tag generation is left out:
the number says how fast a tag stream this measurement alone could keep up with.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import taggerhub.sim as TT  # noqa: N812 - the vendor module's usual alias
from taggerhub.sim import CHANNEL_UNUSED
from taggerhub.sim.engine import VIRTUAL_CHUNK_PS, Chunk
from taggerhub.sim.lab import DeviceSpec
from taggerhub.sim.models import model_by_name
from taggerhub.sim.signals import PhotonPairSource, PoissonSource

SECOND = 10**12


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def idlest_cpu(allowed: set[int], sample_s: float = 0.5) -> int:
    """The allowed CPU with the most idle time over a short sample (the machine may be shared)."""

    def idle() -> dict[int, int]:
        with open("/proc/stat") as f:
            return {int(p[0][3:]): int(p[4]) for p in (line.split() for line in f)
                    if p[0].startswith("cpu") and p[0] != "cpu"}

    before = idle()
    time.sleep(sample_s)
    after = idle()
    return max(sorted(allowed), key=lambda c: after.get(c, 0) - before.get(c, 0))


def lab(rate_hz: float) -> list[DeviceSpec]:
    """Eight busy channels: pairs on 1/2 (a quarter of the tags), Poisson light on 3..8."""
    pair_rate = rate_hz / 8
    sources = [PhotonPairSource(channel_a=1, channel_b=2, pair_rate_hz=pair_rate, delay_ps=2000,
                                jitter_a_ps=30.0, jitter_b_ps=30.0)]
    sources += [PoissonSource(channel=c, rate_hz=(rate_hz - 2 * pair_rate) / 6) for c in range(3, 9)]
    return [DeviceSpec(serial="BENCH", model=model_by_name("x"), sources=sources)]


def open_measurements(tagger):
    channels = list(range(1, 9))
    return [
        TT.Countrate(tagger, channels),
        TT.Counter(tagger, channels, binwidth=10**9, n_values=1000),
        TT.Correlation(tagger, 2, 1, binwidth=10, n_bins=1000),
    ]


def throughput(rate_hz: float, sim_seconds: float) -> tuple[float, float, float, int]:
    """Return (tags per wall second, wall seconds, CPU seconds, tags) for ``sim_seconds`` of simulated time.

    CPU seconds (of the whole process, all on one core) make the number meaningful on a shared machine.
    """
    TT.configure(devices=lab(rate_hz), clock="virtual", seed=7)
    tagger = TT.createTimeTagger()
    try:
        tagger.setDeadtime(1, 0)  # clamps to the model minimum
        count, counter, corr = open_measurements(tagger)
        for m in (count, counter, corr):
            m.stop()
            m.clear()
        warm = TT.Countrate(tagger, [1])
        warm.startFor(SECOND // 10)
        warm.waitUntilFinished()
        del warm
        start, cpu_start = time.perf_counter(), time.process_time()
        for m in (count, counter, corr):
            m.startFor(int(sim_seconds * SECOND))
        for m in (count, counter, corr):
            m.waitUntilFinished()
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        tags = int(count.getCountsTotal().sum())
        assert corr.getData().sum() > 0 and counter.getDataTotalCounts().sum() == tags
        return tags / wall, wall, cpu, tags
    finally:
        TT.freeTimeTagger(tagger)


def memory(rate_hz: float, wall_seconds: float, every_s: float = 5.0) -> list[tuple[float, float]]:
    """RSS samples (wall second, MiB) while the three measurements run continuously."""
    TT.configure(devices=lab(rate_hz), clock="virtual", seed=8)
    tagger = TT.createTimeTagger()
    try:
        measurements = open_measurements(tagger)
        samples = []
        start = time.perf_counter()
        while (now := time.perf_counter() - start) < wall_seconds:
            samples.append((now, rss_mib()))
            time.sleep(every_s)
        samples.append((time.perf_counter() - start, rss_mib()))
        assert all(m.isRunning() for m in measurements)
        return samples
    finally:
        TT.freeTimeTagger(tagger)


# Each measurement type with the parameters lab scripts typically use, on the bench lab's channels
# (every channel carries rate/8; 1 and 2 are photon pairs 2 ns apart).
MEASUREMENTS: dict[str, Callable[[TT.TimeTagger], object]] = {
    "Countrate (8 ch)": lambda t: TT.Countrate(t, list(range(1, 9))),
    "Counter 1 ms x 1000 (8 ch)": lambda t: TT.Counter(t, list(range(1, 9)), binwidth=10**9, n_values=1000),
    "Counter 1 ns x 1000 (2 ch)": lambda t: TT.Counter(t, [1, 2], binwidth=1000, n_values=1000),
    "Correlation 10 ps x 1000": lambda t: TT.Correlation(t, 2, 1, binwidth=10, n_bins=1000),
    "Histogram 10 ps x 1000": lambda t: TT.Histogram(t, 2, 1, binwidth=10, n_bins=1000),
    "StartStop 10 ps": lambda t: TT.StartStop(t, 2, 1, binwidth=10),
    "TimeDifferences 10 ps x 1000 x 10": lambda t: TT.TimeDifferences(t, 2, 1, 3, CHANNEL_UNUSED, 10, 1000, 10),
    "HistogramLogBins 1us..1s x 100 (FCS)": lambda t: TT.HistogramLogBins(t, 1, 1, -6, 0, 100),
    "HistogramLogBins 100ps..1us x 100": lambda t: TT.HistogramLogBins(t, 2, 1, -10, -6, 100),
    "HistogramCustomBins 10 bins": lambda t: TT.HistogramCustomBins(t, 2, 1, [0, 1000, 2000, 3000, 5000, 10**4,
                                                                              10**5, 10**6, 10**7, 10**8, 10**9]),
    "Histogram2D 100 x 100": lambda t: TT.Histogram2D(t, 1, 2, 3, 100, 100, 100, 100),
    "CorrelationPairs 3 ch": lambda t: TT.CorrelationPairs(t, [1, 2, 3], binwidth=10, n_bins=1000),
    "CountBetweenMarkers": lambda t: TT.CountBetweenMarkers(t, 1, 3, CHANNEL_UNUSED, 1000),
    "GatedCounter 2 ch": lambda t: TT.GatedCounter(t, [1, 2], 3, 4, 1000),
    "FrequencyCounter 1 ch": lambda t: TT.FrequencyCounter(t, [3], 10**9, 10**9, 100),
    "TimeDifferencesND 10 ps x 1000 x (10, 5)": lambda t: TT.TimeDifferencesND(
        t, 2, 1, [3, 5], [4, CHANNEL_UNUSED], [10, 5], 10, 1000),
    "PhaseNoise 32 per octave": lambda t: TT.PhaseNoise(t, 3),
    "Sampler 3 ch": lambda t: TT.Sampler(t, 3, [1, 2, 4], 10**5),
    "TimeTagStream 8 ch": lambda t: TT.TimeTagStream(t, 10**8, list(range(1, 9))),
    "Coincidence 1 ns (virtual)": lambda t: TT.Coincidence(t, [1, 2], 1000),
    "Coincidences 3 groups (virtual)": lambda t: TT.Coincidences(t, [[1, 2], [1, 3], [2, 3]], 1000),
    "Combinations 3 ch (virtual)": lambda t: TT.Combinations(t, [1, 2, 3], 1000),
    "Combiner 4 ch (virtual)": lambda t: TT.Combiner(t, [1, 2, 3, 4]),
    "DelayedChannel (virtual)": lambda t: TT.DelayedChannel(t, 1, 5000),
    "GatedChannel (virtual)": lambda t: TT.GatedChannel(t, 1, 3, 4),
    "FrequencyMultiplier x4 (virtual)": lambda t: TT.FrequencyMultiplier(t, 3, 4),
    "EventGenerator (virtual)": lambda t: TT.EventGenerator(t, 3, [1000, 2000, 5000]),
    "ConstantFractionDiscriminator (virtual)": lambda t: TT.ConstantFractionDiscriminator(t, [1], 20_000),
    "ConditionalFilterChannel (virtual)": lambda t: TT.ConditionalFilterChannel(t, [3], [1]),
    "TriggerOnCountrate (virtual)": lambda t: TT.TriggerOnCountrate(t, 3, 1e6, 1e5, 10**9),
}
GOAL_TAGS_PER_S = 10e6


def chunks_of(tagger, sim_seconds: float) -> list[Chunk]:
    """The bench lab's tags (all eight channels, both edges of 1) as the engine would hand them out."""
    stage, chunks, t = tagger._stage, [], 0
    wanted = {*range(1, 9), -1}
    while t < int(sim_seconds * SECOND):
        chunks.append(Chunk(t, t + VIRTUAL_CHUNK_PS, stage.process(wanted, t, t + VIRTUAL_CHUNK_PS)))
        t += VIRTUAL_CHUNK_PS
    return chunks


def per_measurement(rate_hz: float, sim_seconds: float, only: str | None = None) -> list[tuple[str, float, int]]:
    """(name, tags per CPU second of the measurement's own work, tags it received) per measurement type."""
    TT.configure(devices=lab(rate_hz), clock="virtual", seed=11)
    tagger = TT.createTimeTagger()
    try:
        tagger.xtra_setAutoStart(False)  # measured by hand below, not by the engine
        chunks = chunks_of(tagger, sim_seconds)
        rows = []
        for name, make in MEASUREMENTS.items():
            if only and only.lower() not in name.lower():
                continue
            measurement = make(tagger)
            channels = {abs(c) if c != -1 else -1 for c in measurement._wanted_channels()}
            tags = sum(int(c.get(ch).size) for c in chunks for ch in channels)
            cpu = 0.0
            for chunk in chunks:
                fresh = Chunk(chunk.begin_ps, chunk.end_ps, dict(chunk.tags))  # virtual channels add to it
                begin = time.thread_time()
                measurement._on_chunk(fresh)
                cpu += time.thread_time() - begin
            rows.append((name, tags / cpu if cpu > 0 else float("inf"), tags))
            print(f"  {name}: {rows[-1][1] / 1e6:.1f} M tags/s", flush=True)
            measurement._release()
        return rows
    finally:
        TT.freeTimeTagger(tagger)


def print_table(rows: list[tuple[str, float, int]]) -> None:
    width = max(len(r[0]) for r in rows)
    print(f"{'measurement':<{width}}  {'M tags/s':>9}  {'tags fed':>10}  goal >= {GOAL_TAGS_PER_S / 1e6:.0f} M")
    for name, rate, tags in rows:
        print(f"{name:<{width}}  {rate / 1e6:9.1f}  {tags:10d}  {'ok' if rate >= GOAL_TAGS_PER_S else 'BELOW'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=40e6, help="simulated tags per second (default 40e6)")
    parser.add_argument("--sim-seconds", type=float, default=5.0, help="simulated seconds for the rate phase")
    parser.add_argument("--memory-seconds", type=float, default=60.0, help="wall seconds of the memory phase")
    parser.add_argument("--profile", action="store_true", help="profile the engine while it runs")
    parser.add_argument("--per-measurement", action="store_true",
                        help="tags/s each measurement type sustains alone (over --sim-seconds of the lab)")
    parser.add_argument("--only", default=None, help="with --per-measurement: names containing this text")
    args = parser.parse_args()
    cpu = None
    if hasattr(os, "sched_setaffinity"):
        cpu = idlest_cpu(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})  # one core for every thread
    if args.per_measurement:
        print(f"simulator per-measurement benchmark: {args.rate / 1e6:.0f} M tags/s lab ({args.rate / 8e6:.1f} M "
              f"per channel), {args.sim_seconds} s of tags, one core (cpu {cpu}), date {time.strftime('%Y-%m-%d')}")
        print_table(per_measurement(args.rate, args.sim_seconds, args.only))
        return
    print(f"simulator benchmark: Countrate + Counter + Correlation on 8 channels, {args.rate / 1e6:.0f} M tags/s "
          f"simulated, one core (cpu {cpu}), date {time.strftime('%Y-%m-%d')}")
    if args.profile:
        import cProfile
        import pstats
        import threading

        profiler = cProfile.Profile()
        threading.setprofile(lambda *a: None)
        original = TT.engine.TagEngine._run

        def profiled_run(self):
            profiler.enable()
            try:
                original(self)
            finally:
                profiler.disable()

        TT.engine.TagEngine._run = profiled_run
        throughput(args.rate, args.sim_seconds)
        TT.engine.TagEngine._run = original
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
        return
    rate, wall, cpu, tags = throughput(args.rate, args.sim_seconds)
    print(f"load average before: {os.getloadavg()[0]:.1f}")
    print(f"throughput: {rate / 1e6:.1f} M tags/s per wall second, {tags / cpu / 1e6:.1f} M tags/s per CPU second "
          f"({tags} tags, {wall:.2f} s wall, {cpu:.2f} s CPU; goal >= 20 M tags/s)")
    if args.memory_seconds > 0:
        samples = memory(args.rate, args.memory_seconds)
        warm = min(20.0, args.memory_seconds / 3)  # allocator pools fill during the first seconds
        settled = [mib for t, mib in samples if t >= warm]
        print("rss MiB over time: " + ", ".join(f"{t:.0f}s={mib:.0f}" for t, mib in samples))
        print(f"memory after {warm:.0f} s warm-up: first {settled[0]:.0f} MiB, last {settled[-1]:.0f} MiB, "
              f"range {min(settled):.0f}..{max(settled):.0f} MiB (growth {settled[-1] - settled[0]:+.0f} MiB)")


if __name__ == "__main__":
    main()
