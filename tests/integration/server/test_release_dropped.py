"""A script's dropped proxies free their server objects, as in one process with the vendor library."""

from __future__ import annotations

import gc
import time

import pytest
from hostile import connect, tls_env

from taggerhub import client
from taggerhub.client import proxy as proxy_module
from taggerhub.client import release

QUOTA = 4


@pytest.fixture
def quota_server(start_auth_server, lab_pki):
    return start_auth_server(**tls_env(lab_pki, TAGGERHUB_LIMITS_MAX_MEASUREMENTS=str(QUOTA)))


def _objects(TT) -> int:
    gc.collect()
    return TT.hub_status()["objects"]  # a call: sends the pending releases first


def test_a_loop_making_a_measurement_per_step_runs_past_the_quota(quota_server, lab_pki):
    TT = connect(quota_server, lab_pki, "olga")
    tagger = TT.createTimeTagger()
    tagger.setTestSignal([1], True)
    kept = TT.Countrate(tagger, [1])
    kept.startFor(int(1e9))
    seen = []
    for _ in range(3 * QUOTA):
        c = TT.Countrate(tagger, [1])  # the previous `c` is dropped here, as in the trial scripts
        c.startFor(int(1e9))
        assert c.waitUntilFinished(20_000)
        seen.append(float(c.getData()[0]))
        seen.append(_objects(TT))
    rates, counts = seen[0::2], seen[1::2]
    assert all(rate > 0 for rate in rates)
    assert max(counts) <= 3, counts  # the tagger, `kept` and the current `c`: dropped ones are freed
    assert kept.waitUntilFinished(20_000) and kept.getData()[0] > 0  # a proxy still held keeps working


def test_a_delayed_channel_read_by_a_correlation_lives_while_the_correlation_does(quota_server, lab_pki):
    TT = connect(quota_server, lab_pki, "olga")
    tagger = TT.createTimeTagger()
    tagger.setTestSignal([1, 2], True)
    delayed = TT.DelayedChannel(tagger, 1, 3000)
    corr = TT.Correlation(tagger, delayed.getChannel(), 1, binwidth=100, n_bins=100)
    before = _objects(TT)
    del delayed
    assert _objects(TT) == before  # released by the client, kept by the server for the correlation
    corr.startFor(int(5e10))
    assert corr.waitUntilFinished(20_000)
    assert corr.getIndex()[corr.getData().argmax()] == 3050  # the delayed copy still arrives
    del corr
    assert _objects(TT) == before - 2  # with its last reader gone, the delayed channel goes too


def test_a_delayed_channel_read_through_a_synchronized_group_lives_while_its_reader_does(quota_server, lab_pki):
    TT = connect(quota_server, lab_pki, "olga")
    tagger = TT.createTimeTagger()
    tagger.setTestSignal([1, 2], True)
    delayed = TT.DelayedChannel(tagger, 1, 3000)
    sync = TT.SynchronizedMeasurements(tagger)
    corr = TT.Correlation(sync.getTagger(), delayed.getChannel(), 1, binwidth=100, n_bins=100)
    del delayed
    gc.collect()
    sync.startFor(int(5e10))
    assert sync.waitUntilFinished(20_000)
    assert corr.getIndex()[corr.getData().argmax()] == 3050


def test_another_clients_proxy_keeps_a_shared_object_after_the_creator_drops_theirs(
        quota_server, lab_pki, monkeypatch):
    creator = connect(quota_server, lab_pki, "olga")
    tagger = creator.createTimeTagger()
    tagger.setTestSignal([1], True)
    rate = creator.Countrate(tagger, [1])
    monkeypatch.setattr(proxy_module, "_client_id", "another-client")  # a second client process, as a session
    other = connect(quota_server, lab_pki, "otto")
    monkeypatch.undo()
    theirs = client.Proxy(rate._pyroUri, token=quota_server.tokens["otto"],
                          ssl_context=other._taggerhub_ssl)
    theirs._pyroHandshake = dict(other._pyroHandshake)
    assert theirs.getData() is not None  # the other session now uses it
    object_id = rate._pyroUri.object
    copy = client.Proxy(rate._pyroUri, token=quota_server.tokens["olga"], ssl_context=creator._taggerhub_ssl)
    del rate
    gc.collect()
    assert release.live_count(object_id) == 2  # copies made by hand count in this client: nothing released yet
    copy.startFor(int(1e9))
    before = _objects(creator)
    assert creator.hub_release(copy) == 0  # the creator's session ends its use (as a dropping process would)
    assert creator.hub_release(copy) == 0  # again: harmless
    assert theirs.waitUntilFinished(20_000) and theirs.getData()[0] > 0  # the other session still uses it
    assert _objects(creator) == before
    with pytest.raises(TypeError, match=r"hub_release\(\) takes proxies of server objects, got int"):
        creator.hub_release(7)


def test_dropped_proxies_of_a_shared_tagger_leave_it_open_for_others(quota_server, lab_pki):
    first = connect(quota_server, lab_pki, "olga")
    tagger = first.createTimeTagger()
    second = first.createTimeTagger()  # the same tagger, a second proxy of it
    del tagger
    assert second.getSerial()
    measurement = first.Countrate(second, [1])
    del second
    assert _objects(first) == 2  # the tagger lives while its measurement does
    assert measurement.getData() is not None


def test_the_releasing_connection_does_not_keep_a_finished_script_connected(quota_server, lab_pki):
    admin = connect(quota_server, lab_pki, "ada")
    monkeypatch_id = proxy_module._client_id
    proxy_module._client_id = "a-script"  # a session of its own, apart from the admin's
    try:
        TT = connect(quota_server, lab_pki, "olga")
    finally:
        proxy_module._client_id = monkeypatch_id
    tagger = TT.createTimeTagger()
    rate = TT.Countrate(tagger, [1])
    del rate
    assert _objects(TT) == 1  # released through a connection of its own
    del TT, tagger
    gc.collect()
    deadline = time.monotonic() + 10
    while any(r["user"] == "olga" for r in admin.hub_sessions()):
        assert time.monotonic() < deadline, "the script's session outlived its proxies"
        time.sleep(0.05)
