"""Quotas over a live auth + TLS server: too fine, too big and too many measurements are refused by name."""

from __future__ import annotations

import gc
import time

import Pyro5.errors
import pytest
from hostile import connect, tls_env

from taggerhub.errors import AccessDenied


@pytest.fixture
def quota_server(start_auth_server, lab_pki):
    return start_auth_server(**tls_env(
        lab_pki, TAGGERHUB_LIMITS_OVERRIDES="role:observer.max_objects=50,role:observer.max_measurements=0",
        TAGGERHUB_LIMITS_RECEIVE_BYTES_PER_CONNECTION=1_000_000))


def test_1ns_counter_and_huge_measurements_are_refused_naming_the_limit(quota_server, lab_pki):
    TT = connect(quota_server, lab_pki, "oscar")
    tagger = TT.createTimeTagger()
    with pytest.raises(AccessDenied, match=r"limits\.min_binwidth_ps=1000000"):
        TT.Counter(tagger, [1, 2, 3, 4], binwidth=1000, n_values=1)
    with pytest.raises(AccessDenied, match=r"n_bins=10000000000 .*limits\.measurement_bytes="):
        TT.Histogram(tagger, 1, 2, 1000, 10**10)
    with pytest.raises(AccessDenied, match=r"n_values=10000000000 x channels=len 4 .*limits\.measurement_bytes"):
        TT.Counter(tagger, [1, 2, 3, 4], binwidth=10**9, n_values=10**10)
    with pytest.raises(AccessDenied, match=r"n_bins=100000 x n_histograms=100000"):
        TT.TimeDifferences(tagger, 1, n_bins=100_000, n_histograms=100_000)
    # a reasonable one still works, and the server is still serving
    counter = TT.Counter(tagger, [1, 2], binwidth=10**9, n_values=100)
    assert counter.getData().shape == (2, 100)


def test_10000_objects_by_one_observer_stop_at_the_quota(quota_server, lab_pki):
    TT = connect(quota_server, lab_pki, "oscar")
    tagger = TT.createTimeTagger()
    made, refusal, held = 0, None, []  # held: a dropped measurement would be released by the client
    deadline = time.monotonic() + 60
    for _ in range(10_000):
        if time.monotonic() > deadline:
            break
        try:
            held.append(TT.Countrate(tagger, [1]))
            made += 1
        except AccessDenied as exc:
            refusal = str(exc)
            break
    assert made == 50, f"made {made}, refusal {refusal}"
    assert refusal is not None and "limits.max_objects=50" in refusal and "'oscar'" in refusal
    admin = connect(quota_server, lab_pki, "ada")
    row = next(r for r in admin.hub_sessions() if r["user"] == "oscar")
    assert row["usage"]["objects"] == 50 and row["usage"]["max_objects"] == 50
    assert row["usage"]["measurement_bytes"] > 0
    # other users are not held by oscar's quota; freeing gives oscar room again
    otto = connect(quota_server, lab_pki, "otto")
    assert otto.Countrate(otto.createTimeTagger(), [1]).getData() is not None
    TT.freeTimeTagger(tagger)
    tagger = TT.createTimeTagger()
    TT.Countrate(tagger, [1])
    row = next(r for r in admin.hub_sessions() if r["user"] == "oscar")
    assert row["usage"]["objects"] == 1


def test_request_over_the_receive_limit_drops_only_that_connection(quota_server, lab_pki):
    TT = connect(quota_server, lab_pki, "oscar")
    other = connect(quota_server, lab_pki, "otto")
    with pytest.raises(Pyro5.errors.CommunicationError):
        TT.hub_status("x" * 2_000_000)
    assert other.hub_status()["server"] == "taggerhub"
    assert "limits.receive_bytes_per_connection=1000000" in quota_server.server.log()


def test_live_measurements_are_capped_per_user_and_for_the_server(start_auth_server, lab_pki):
    server = start_auth_server(**tls_env(lab_pki, TAGGERHUB_LIMITS_MAX_MEASUREMENTS=4,
                                         TAGGERHUB_LIMITS_MEASUREMENTS_BUDGET=6))
    oscar = connect(server, lab_pki, "oscar")
    tagger = oscar.createTimeTagger()
    held = [oscar.Countrate(tagger, [1]) for _ in range(4)]  # held: a dropped one would be released
    with pytest.raises(AccessDenied, match=r"4 live measurements \(limits\.max_measurements=4\).* stays on the server "
                       r"while your script holds it.*vendor's client also when your script dropped it"):
        oscar.Counter(tagger, [1], binwidth=10**9, n_values=10)
    otto = connect(server, lab_pki, "otto")
    otto_tagger = otto.createTimeTagger()
    held += [otto.Countrate(otto_tagger, [1]), otto.Countrate(otto_tagger, [1])]
    with pytest.raises(AccessDenied, match=r"runs 6 measurements \(limits\.measurements_budget=6"):
        otto.Countrate(otto_tagger, [1])
    assert otto.hub_status()["server"] == "taggerhub"  # objects that are not measurements are not held back
    oscar.freeTimeTagger(tagger)  # freed measurements give their room back
    del held
    otto.Countrate(otto_tagger, [1])
    tagger = oscar.createTimeTagger()
    kept = oscar.Countrate(tagger, [1])
    admin = connect(server, lab_pki, "ada")
    row = next(r for r in admin.hub_sessions() if r["user"] == "oscar")
    assert (row["usage"]["measurements"], row["usage"]["max_measurements"]) == (1, 4)
    del kept  # dropped: the client releases it, and its room comes back
    gc.collect()
    row = next(r for r in admin.hub_sessions() if r["user"] == "oscar")
    assert row["usage"]["measurements"] == 0
