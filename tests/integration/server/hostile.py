"""Shared by the containment tests: an auth + TLS server, its clients, and measures of what victims see."""

from __future__ import annotations

import socket
import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from taggerhub import client


def tls_env(pki: Path, **extra: Any) -> dict[str, str]:
    env = {
        "TAGGERHUB_TLS_ENABLED": "true",
        "TAGGERHUB_TLS_CERT_FILE": str(pki / "server.pem"),
        "TAGGERHUB_TLS_KEY_FILE": str(pki / "server-key.pem"),
        "TAGGERHUB_TLS_CA_FILE": str(pki / "ca.pem"),
    }
    env.update({k: str(v) for k, v in extra.items()})
    return env


def connect(server: Any, pki: Path, user: str, timeout_s: float = 10.0) -> Any:
    """A library proxy for ``user`` over TLS."""
    TT = client.createProxy(port=server.port, token=server.tokens[user], tls_ca=str(pki / "ca.pem"))
    TT._pyroTimeout = timeout_s
    return TT


def proc_status(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {key} in /proc/{pid}/status")


def threads_of(server: Any) -> int:
    return proc_status(server.server.proc.pid, "Threads")


@dataclass
class VictimStats:
    latencies_s: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    connects_s: list[float] = field(default_factory=list)  # connect + createTimeTagger, per victim

    @property
    def calls(self) -> int:
        return len(self.latencies_s) + len(self.failures)

    def p(self, q: float) -> float:
        data = sorted(self.latencies_s)
        return data[min(len(data) - 1, int(q * len(data)))] if data else float("nan")

    def summary(self) -> str:
        median = statistics.median(self.latencies_s) * 1e3 if self.latencies_s else float("nan")
        return (f"{self.calls} calls, {len(self.failures)} failed, p50 {median:.1f} ms, "
                f"p99 {self.p(0.99) * 1e3:.1f} ms; first failures: {self.failures[:3]}")


def run_victims(server: Any, pki: Path, n_clients: int, duration_s: float, user: str = "olga") -> VictimStats:
    """``n_clients`` threads, each with its own connection, calling getSerial for ``duration_s``."""
    stats = VictimStats()
    lock = threading.Lock()
    stop = time.monotonic() + duration_s

    def victim() -> None:
        started = time.perf_counter()
        try:
            TT = connect(server, pki, user)
            tagger = TT.createTimeTagger()
        except Exception as exc:
            with lock:
                stats.failures.append(f"connect: {type(exc).__name__}: {exc}")
            return
        with lock:
            stats.connects_s.append(time.perf_counter() - started)
            if time.monotonic() >= stop:  # a victim kept out for the whole run was denied service too
                stats.failures.append(f"connect took {stats.connects_s[-1]:.1f} s, longer than the run")
        while time.monotonic() < stop:
            started = time.perf_counter()
            try:
                tagger.getSerial()
            except Exception as exc:
                with lock:
                    stats.failures.append(f"{type(exc).__name__}: {exc}")
                continue
            with lock:
                stats.latencies_s.append(time.perf_counter() - started)
            time.sleep(0.005)
        tagger._pyroRelease()
        TT._pyroRelease()

    threads = [threading.Thread(target=victim, daemon=True) for _ in range(n_clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(duration_s + 30)
    return stats


def idle_sockets(port: int, count: int) -> list[socket.socket]:
    """``count`` TCP connections that never send a byte (pre-handshake, pre-TLS)."""
    held = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        held.append(sock)
    return held
