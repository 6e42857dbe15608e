"""One-way call floods: the server's thread count stays bounded and other clients are served."""

from __future__ import annotations

import threading

import Pyro5.errors
import pytest
from hostile import connect, run_victims, threads_of, tls_env

from taggerhub import client

pytestmark = pytest.mark.slow

CALLS = 6000
ATTACK_CONNECTIONS = 4
ONEWAY_PER_USER = 16


def test_6000_oneway_calls_leave_threads_bounded_and_victims_served(start_auth_process, lab_pki):
    server = start_auth_process(**tls_env(lab_pki, TAGGERHUB_LIMITS_ONEWAY_PER_USER=ONEWAY_PER_USER,
                                               TAGGERHUB_AUTH_MAX_CONNECTIONS_PER_USER=64))
    TT = connect(server, lab_pki, "oscar")
    tagger = TT.createTimeTagger()
    counter = TT.Counter(tagger, [1], binwidth=10**9, n_values=10)
    counter.startFor(20 * 10**12)  # 20 s: every waitUntilFinished below blocks until then
    base_threads = threads_of(server)
    sent = [0] * ATTACK_CONNECTIONS
    peak = [base_threads]

    def attack(slot: int) -> None:
        proxy = connect(server, lab_pki, "oscar", timeout_s=10.0)
        m = client.Proxy(counter._pyroUri, token=server.tokens["oscar"], ssl_context=counter._taggerhub_ssl)
        m._pyroTimeout = 10.0
        m._pyroBind()  # metadata from the handshake would reset _pyroOneway
        m._pyroOneway.add("waitUntilFinished")
        try:
            for _ in range(CALLS // ATTACK_CONNECTIONS):
                m.waitUntilFinished()
                sent[slot] += 1
        except Pyro5.errors.TimeoutError:
            pass  # the server stopped reading this connection (back-pressure): the flood is held back
        finally:
            proxy._pyroRelease()

    def watch(stop: threading.Event) -> None:
        while not stop.wait(0.1):
            peak[0] = max(peak[0], threads_of(server))

    stop = threading.Event()
    watcher = threading.Thread(target=watch, args=(stop,), daemon=True)
    watcher.start()
    errors: list[str] = []

    def attack_logged(slot: int) -> None:
        try:
            attack(slot)
        except Exception as exc:
            errors.append(f"after {sent[slot]}: {type(exc).__name__}: {exc}")

    attackers = [threading.Thread(target=attack_logged, args=(i,), daemon=True) for i in range(ATTACK_CONNECTIONS)]
    for t in attackers:
        t.start()
    victims = run_victims(server, lab_pki, n_clients=20, duration_s=4.0)
    for t in attackers:
        t.join(30)
    stop.set()
    watcher.join(5)
    # Bound: one worker per open connection (20 victims with two proxies each, 4 attackers with two) plus
    # limits.oneway_per_user one-way threads for this user, plus a few fixed threads.
    bound = base_threads + 2 * 20 + 2 * ATTACK_CONNECTIONS + ONEWAY_PER_USER + 4
    assert not errors, errors
    assert sum(sent) >= ATTACK_CONNECTIONS * 20, f"the attack did not get going: {sent}"
    assert peak[0] <= bound, f"server threads peaked at {peak[0]} (bound {bound}) after {sum(sent)} one-way calls"
    assert not victims.failures, victims.summary()
    assert victims.calls > 100, victims.summary()
    assert tagger.getSerial()  # still serving the attacker's own first connection too
    assert server.server.proc.poll() is None
