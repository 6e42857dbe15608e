"""RPC health figures kept by the server and handed to the exporter in one call.

Counters and a latency histogram per method and outcome, plus refused
handshakes. Labels stay bounded: method names come from the served API, and
outcomes are a fixed set.
"""

from __future__ import annotations

import bisect
import threading
import time
from typing import Any

from ..errors import RefusalReason

# Seconds; chosen around the loopback latencies measured in bench/.
DURATION_BUCKETS_S = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0)


class RpcStats:
    """Thread-safe call counters and duration histograms."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.started_at = time.time()
        self._calls: dict[tuple[str, str], int] = {}
        self._buckets: dict[str, list[int]] = {}
        self._sum_s: dict[str, float] = {}
        self._count: dict[str, int] = {}
        # Every reason reported as 0 from the start, so that rate() and alerts see the first refusal.
        self._refused: dict[str, int] = {reason.value: 0 for reason in RefusalReason}
        self._connections_total = 0

    def record_call(self, method: str, outcome: str, duration_s: float) -> None:
        bucket = bisect.bisect_left(DURATION_BUCKETS_S, duration_s)
        key = (method, outcome)
        with self._lock:
            self._calls[key] = self._calls.get(key, 0) + 1
            buckets = self._buckets.get(method)
            if buckets is None:
                buckets = self._buckets[method] = [0] * (len(DURATION_BUCKETS_S) + 1)
                self._sum_s[method] = 0.0
                self._count[method] = 0
            buckets[bucket] += 1
            self._sum_s[method] += duration_s
            self._count[method] += 1

    def record_refused(self, reason: str) -> None:
        with self._lock:
            self._refused[reason] = self._refused.get(reason, 0) + 1

    def record_connection(self) -> None:
        with self._lock:
            self._connections_total += 1

    def snapshot(self) -> dict[str, Any]:
        """A plain-data copy, safe to send over the wire."""
        with self._lock:
            return {
                "started_at": self.started_at,
                "calls": [[m, o, n] for (m, o), n in sorted(self._calls.items())],
                "duration_buckets_s": list(DURATION_BUCKETS_S),
                "durations": {
                    m: {"buckets": list(b), "sum_s": self._sum_s[m], "count": self._count[m]}
                    for m, b in self._buckets.items()
                },
                "refused_handshakes": dict(self._refused),
                "connections_total": self._connections_total,
            }
