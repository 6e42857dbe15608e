"""Idle pre-handshake sockets cost no worker: fresh authenticated clients still get in."""

from __future__ import annotations

import time

import pytest
from hostile import connect, idle_sockets, threads_of, tls_env

pytestmark = [pytest.mark.integration, pytest.mark.slow]

IDLE = 300
FRESH = 40


@pytest.mark.parametrize("caps", [
    {},  # the defaults: 32 pending per source, so most idle sockets are dropped, oldest first
    {"TAGGERHUB_LIMITS_PENDING_HANDSHAKES": 1000, "TAGGERHUB_LIMITS_PENDING_PER_SOURCE": 1000},  # all kept
], ids=["default-caps", "caps-above-300"])
def test_300_idle_sockets_leave_fresh_clients_served(start_auth_process, lab_pki, caps):
    server = start_auth_process(**tls_env(lab_pki, TAGGERHUB_SERVER_HANDSHAKE_TIMEOUT_S=60, **caps))
    warm_up = connect(server, lab_pki, "otto", timeout_s=5.0)  # the worker pool and caches start their threads
    assert warm_up.hub_status()["server"] == "taggerhub"
    warm_up._pyroRelease()
    time.sleep(1.0)
    base_threads = threads_of(server)
    held = idle_sockets(server.port, IDLE)
    try:
        time.sleep(0.5)  # let the server accept them all
        assert threads_of(server) <= base_threads + 2, "pending sockets must not take threads"
        ok, failures = 0, []
        for _ in range(FRESH):
            try:
                TT = connect(server, lab_pki, "otto", timeout_s=5.0)
                assert TT.hub_status()["server"] == "taggerhub"
                TT._pyroRelease()
                ok += 1
            except Exception as exc:
                failures.append(f"{type(exc).__name__}: {exc}")
        assert ok >= 0.95 * FRESH, f"{ok}/{FRESH} fresh connections succeeded; {failures[:3]}"
        admin = connect(server, lab_pki, "ada")
        refused = admin.hub_metrics()["rpc"]["refused_handshakes"]
        if not caps:
            assert refused.get("crowded", 0) >= IDLE - 32, refused
        else:
            assert refused.get("crowded", 0) == 0, refused
    finally:
        for sock in held:
            sock.close()
    assert server.server.proc.poll() is None
