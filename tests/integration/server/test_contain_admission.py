"""Idle pre-handshake sockets cost no worker: fresh authenticated clients still get in."""

from __future__ import annotations

import time

import pytest
from hostile import connect, idle_sockets, threads_of, tls_env

pytestmark = pytest.mark.slow

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
            # A source's excess is dropped once its 1 s grace has passed: on a fast machine the fresh
            # connections can finish before that, so wait (bounded) for the accepting loop to trim.
            deadline = time.monotonic() + 10
            while refused.get("crowded", 0) < IDLE - 32 and time.monotonic() < deadline:
                time.sleep(0.2)
                refused = admin.hub_metrics()["rpc"]["refused_handshakes"]
            assert refused.get("crowded", 0) >= IDLE - 32, refused
        else:
            assert refused.get("crowded", 0) == 0, refused
    finally:
        for sock in held:
            sock.close()
    assert server.server.proc.poll() is None


@pytest.mark.parametrize("trusted", [False, True], ids=["untrusted", "trusted-loopback"])
def test_trusted_networks_get_the_larger_per_source_cap(start_auth_process, lab_pki, trusted):
    extra = {"TAGGERHUB_LIMITS_TRUSTED_NETWORKS": "10.13.13.0/24,127.0.0.1/32"} if trusted else {}
    server = start_auth_process(**tls_env(lab_pki, TAGGERHUB_SERVER_HANDSHAKE_TIMEOUT_S=60,
                                          TAGGERHUB_LIMITS_PENDING_PER_SOURCE=4,
                                          TAGGERHUB_LIMITS_PENDING_PER_TRUSTED_SOURCE=50, **extra))
    held = idle_sockets(server.port, 40)
    try:
        admin = connect(server, lab_pki, "ada", timeout_s=10.0)
        deadline = time.monotonic() + 10
        while True:  # the accepting thread takes them in bursts: wait until it has seen all 40
            refused = admin.hub_metrics()["rpc"]["refused_handshakes"].get("crowded", 0)
            if trusted or refused >= 36 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        if trusted:
            time.sleep(1.0)  # room for any wrong drop to show
            assert admin.hub_metrics()["rpc"]["refused_handshakes"].get("crowded", 0) == 0
        else:
            assert refused >= 36  # 40 silent sockets, 4 kept
    finally:
        for sock in held:
            sock.close()


def test_last_workers_are_kept_for_admins(start_auth_process, lab_pki):
    server = start_auth_process(**tls_env(lab_pki, TAGGERHUB_SERVER_MAX_CONNECTIONS=4,
                                          TAGGERHUB_LIMITS_ADMIN_CONNECTIONS=1,
                                          TAGGERHUB_AUTH_MAX_CONNECTIONS_PER_USER=10))
    operators = []
    try:
        for _ in range(3):
            TT = connect(server, lab_pki, "otto")
            assert TT.hub_status()["server"] == "taggerhub"
            operators.append(TT)
        with pytest.raises(Exception, match=r"limits\.admin_connections=1 kept for admins"):
            connect(server, lab_pki, "olga").hub_status()
        admin = connect(server, lab_pki, "ada")
        assert admin.hub_status()["server"] == "taggerhub"  # the kept worker
        assert admin.hub_metrics()["rpc"]["refused_handshakes"]["busy"] >= 1
    finally:
        for TT in operators:
            TT._pyroRelease()
