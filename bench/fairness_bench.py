"""Fairness under attack: 20 victim clients calling getSerial, with and without each attack, side by side.

Starts a real `taggerhub serve` with auth and TLS on, runs the victims alone (baseline), then
with one attack at a time, and prints p50/p99 latency and success rate per run. Goal: under
any one attack the victims' p99 stays under 3x the baseline and no victim call fails.

    .venv/bin/python bench/fairness_bench.py [--seconds 5] [--victims 20] [--rounds 3] [--attacks objects,idle_sockets]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1] / "tests"
sys.path[:0] = [str(TESTS), str(TESTS / "integration" / "server")]
from hostile import VictimStats, connect, idle_sockets, run_victims, tls_env  # noqa: E402

from helpers import free_port, stop_process, wait_for_port  # noqa: E402
from taggerhub import client  # noqa: E402
from taggerhub.access import certs  # noqa: E402
from taggerhub.access.users import UserStore  # noqa: E402


class Server:
    """Enough of the test fixture's AuthServer for the helpers: port and tokens."""

    def __init__(self, directory: Path):
        certs.init(directory, ["localhost", "127.0.0.1"])
        store = UserStore(directory / "users.toml")
        self.tokens = {name: store.add(name, role) for name, role in
                       (("ada", "admin"), ("olga", "operator"), ("oscar", "observer"))}
        self.port = free_port()
        env = {**os.environ, **tls_env(directory), "TAGGERHUB_AUTH_ENABLED": "true",
               "TAGGERHUB_AUTH_USERS_FILE": str(directory / "users.toml"),
               "TAGGERHUB_AUTH_AUDIT_LOG": str(directory / "audit.jsonl"),
               "TAGGERHUB_AUTH_MAX_CONNECTIONS_PER_USER": "64"}
        self.log = open(directory / "server.log", "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([sys.executable, "-m", "taggerhub", "serve", "--port", str(self.port)],
                                     env=env, stdout=self.log, stderr=subprocess.STDOUT)
        wait_for_port(self.port, proc=self.proc)

    def stop(self) -> None:
        stop_process(self.proc, 10)
        self.log.close()


def attack_idle_sockets(server: Server, pki: Path, stop: threading.Event) -> str:
    held = idle_sockets(server.port, 300)
    stop.wait()
    for sock in held:
        sock.close()
    return "300 idle pre-handshake sockets"


def attack_oneway(server: Server, pki: Path, stop: threading.Event) -> str:
    TT = connect(server, pki, "oscar")
    counter = TT.Counter(TT.createTimeTagger(), [1], binwidth=10**9, n_values=10)
    counter.startFor(60 * 10**12)
    sent = [0]

    def flood() -> None:
        m = client.Proxy(counter._pyroUri, token=server.tokens["oscar"], ssl_context=counter._taggerhub_ssl)
        m._pyroTimeout = 5.0
        m._pyroBind()
        m._pyroOneway.add("waitUntilFinished")
        try:
            for _ in range(1500):
                m.waitUntilFinished()
                sent[0] += 1
        except Exception:
            pass  # held back by the server (back-pressure)

    threads = [threading.Thread(target=flood, daemon=True) for _ in range(4)]
    for t in threads:
        t.start()
    stop.wait()
    return f"one-way waitUntilFinished flood ({sent[0]} of 6000 sent)"


def attack_fine_counter(server: Server, pki: Path, stop: threading.Event) -> str:
    TT = connect(server, pki, "oscar")
    try:
        TT.Counter(TT.createTimeTagger(), [1, 2, 3, 4], binwidth=1000, n_values=1).start()
        outcome = "accepted"
    except Exception as exc:
        outcome = f"refused: {type(exc).__name__}"
    stop.wait()
    return f"1 ns Counter ({outcome})"


def attack_objects(server: Server, pki: Path, stop: threading.Event) -> str:
    TT = connect(server, pki, "oscar")
    tagger = TT.createTimeTagger()
    made = 0
    for _ in range(10_000):
        if stop.is_set():
            break
        try:
            TT.Countrate(tagger, [1])
            made += 1
        except Exception:
            break
    stop.wait()
    return f"10,000 objects by one observer ({made} made)"


def attack_denied(server: Server, pki: Path, stop: threading.Event) -> str:
    denied = 0
    while not stop.is_set() and denied < 100_000:
        try:
            tagger = connect(server, pki, "oscar").createTimeTagger()
            while not stop.is_set():
                try:
                    tagger.setTestSignal(1, True)
                except PermissionError:
                    denied += 1
        except Exception:
            time.sleep(0.05)
    return f"denied-call flood ({denied} denied)"


ATTACKS: list[Callable[[Server, Path, threading.Event], str]] = [
    attack_idle_sockets, attack_oneway, attack_fine_counter, attack_objects, attack_denied]


def run(server: Server, pki: Path, seconds: float, victims: int,
        attack: Callable[[Server, Path, threading.Event], str] | None) -> tuple[str, VictimStats]:
    # Warm up first, as a lab's server is: the first connection builds the TLS context and the first
    # createTimeTagger the simulated device, which on a loaded machine took longer than a whole run.
    warm = connect(server, pki, "olga")
    warm.createTimeTagger().getSerial()
    warm._pyroRelease()
    stop = threading.Event()
    label = ["baseline (no attack)"]
    thread = None
    if attack is not None:
        thread = threading.Thread(target=lambda: label.__setitem__(0, attack(server, pki, stop)), daemon=True)
        thread.start()
        time.sleep(1.0)  # let the attack get going
    stats = run_victims(server, pki, victims, seconds)
    stop.set()
    if thread is not None:
        thread.join(20)
    return label[0], stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--victims", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=1, help="repeat baseline, attack, baseline, attack, ...")
    parser.add_argument("--attacks", default="", help="comma-separated names (idle_sockets, oneway, fine_counter, "
                                                      "objects, denied); default: all")
    args = parser.parse_args()
    socket.setdefaulttimeout(None)
    wanted = [a for a in ATTACKS if not args.attacks or a.__name__.removeprefix("attack_") in args.attacks.split(",")]
    # Interleaved: a baseline run before every attack run, so slow drifts of the shared machine hit both.
    order: list[Callable | None] = [step for _ in range(args.rounds) for a in wanted for step in (None, a)]
    rows: list[tuple[str, str, VictimStats]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, attack in enumerate(order):
            name = attack.__name__.removeprefix("attack_") if attack else "baseline"
            server = Server(Path(tmp) / f"{i}-{name}")  # a fresh server per run
            try:
                label, stats = run(server, Path(server.log.name).parent, args.seconds, args.victims, attack)
                rows.append((name, label, stats))
            finally:
                server.stop()
    print(f"{'run':<60} {'calls':>7} {'ok %':>7} {'p50 ms':>8} {'p99 ms':>8} {'p99/prev base':>13}"
          f" {'connect max s':>13}")
    base_p99 = float("nan")
    for name, label, stats in rows:
        ok = 100.0 * len(stats.latencies_s) / max(1, stats.calls)
        if name == "baseline":
            base_p99 = stats.p(0.99)
        print(f"{label:<60} {stats.calls:>7} {ok:>7.2f} {stats.p(0.5) * 1e3:>8.2f} {stats.p(0.99) * 1e3:>8.2f} "
              f"{stats.p(0.99) / base_p99:>13.2f} {max(stats.connects_s, default=float('nan')):>13.2f}")
        if stats.failures:
            print(f"    {len(stats.failures)} failures, first: {stats.failures[:2]}")
    bases = [s.p(0.99) for n, _, s in rows if n == "baseline"]
    print(f"\nbaseline p99 median {statistics.median(bases) * 1e3:.2f} ms over {len(bases)} runs")
    for attack in wanted:
        name = attack.__name__.removeprefix("attack_")
        mine = [s for n, _, s in rows if n == name]
        p99 = statistics.median(s.p(0.99) for s in mine)
        failed = sum(len(s.failures) for s in mine)
        print(f"{name:<14} p99 median {p99 * 1e3:8.2f} ms = {p99 / statistics.median(bases):5.2f}x baseline; "
              f"victim failures {failed} of {sum(s.calls for s in mine)}")


if __name__ == "__main__":
    main()
