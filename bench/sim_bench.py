"""Sustained tag rate of the simulator with Countrate + Counter + Correlation running at once.

The simulator runs on a virtual clock, pinned to one core, over a lab whose
sources produce ``--rate`` tags per simulated second (photon pairs plus Poisson
light on eight channels). Throughput = tags generated and processed per wall
second. A second phase runs for ``--memory-seconds`` of wall time and samples
the resident set size, which must not grow.

    python bench/sim_bench.py                 # goal: >= 20 M tags/s, flat RSS
    python bench/sim_bench.py --profile       # cProfile of the engine thread's work
"""

from __future__ import annotations

import argparse
import os
import time

import taggerhub.sim as TT  # noqa: N812 - the vendor module's usual alias
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=40e6, help="simulated tags per second (default 40e6)")
    parser.add_argument("--sim-seconds", type=float, default=5.0, help="simulated seconds for the rate phase")
    parser.add_argument("--memory-seconds", type=float, default=60.0, help="wall seconds of the memory phase")
    parser.add_argument("--profile", action="store_true", help="profile the engine while it runs")
    args = parser.parse_args()
    cpu = None
    if hasattr(os, "sched_setaffinity"):
        cpu = idlest_cpu(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})  # one core for every thread
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
