"""taggerhub's own client: sharing, thread safety, lifetimes and bad input over a live server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest
from TimeTaggerRPC import client as vendor_client

from helpers import wait_until
from taggerhub import client
from taggerhub.errors import ObjectGone, ServerUnavailable


def test_both_clients_drive_one_shared_tagger(hub):
    ours = client.createProxy(port=hub.port)
    theirs = vendor_client.createProxy(port=hub.port)
    tagger_a = ours.createTimeTagger()
    tagger_b = theirs.createTimeTagger()  # already open: shared, not an error
    assert tagger_a.getSerial() == tagger_b.getSerial()
    tagger_a.setTestSignal(3, True)
    assert tagger_b.getTestSignal(3) is True
    rate = theirs.Countrate(tagger_b, [3])
    counter = ours.Counter(tagger_a, [3], binwidth=int(1e10), n_values=10)
    time.sleep(0.5)
    assert rate.getData()[0] == pytest.approx(800e3, rel=0.02)
    data = counter.getData()
    assert data.dtype == np.int32 and data.shape == (1, 10)
    # freeTimeTagger by one client leaves the device to the other.
    theirs.freeTimeTagger(tagger_b)
    assert tagger_a.getSerial() == tagger_b.getSerial()


def test_proxy_shared_between_threads_without_claiming(hub):
    TT = client.createProxy(port=hub.port)
    tagger = TT.createTimeTagger()
    tagger.setTestSignal(1, True)
    rate = TT.Countrate(tagger, [1])
    errors: list[Exception] = []
    reads = []

    def reader():
        try:
            for _ in range(20):
                reads.append(rate.getData()[0])
                rate.getCaptureDuration()
        except Exception as exc:  # recorded for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(reads) == 160
    rate._pyroClaimOwnership()  # harmless
    assert rate.isRunning()


def test_killed_client_process_frees_its_objects(hub):
    TT = client.createProxy(port=hub.port)
    tagger = TT.createTimeTagger()
    baseline = TT.hub_status()["objects"]
    script = textwrap.dedent(f"""
        import sys, time
        from taggerhub import client
        TT = client.createProxy(port={hub.port})
        t = TT.createTimeTagger()
        ms = [TT.Countrate(t, [1]), TT.Counter(t, [2], binwidth=10**9, n_values=10), TT.Correlation(t, 1, 2)]
        print("ready", flush=True)
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        assert TT.hub_status()["objects"] == baseline + 3
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        wait_until(lambda: TT.hub_status()["objects"] == baseline, 10, "the killed client's objects to be freed", 0.05)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert tagger.getSerial()  # our tagger survived


def test_bad_calls_get_clear_errors_and_server_keeps_serving(hub):
    TT = client.createProxy(port=hub.port)
    tagger = TT.createTimeTagger()
    with pytest.raises(ValueError, match="invalid channel 99"):
        TT.Countrate(tagger, [99])
    tagger.setTriggerLevel(1, 42.0)  # out of range: clamped with a warning, as the vendor library does
    assert tagger.getTriggerLevel(1) == pytest.approx(2.5)
    with pytest.raises(TypeError):
        tagger.setTestSignal()
    with pytest.raises(AttributeError):
        tagger.noSuchMethod()
    with pytest.raises(AttributeError):
        tagger._obj  # noqa: B018 - adapter internals are not reachable
    with pytest.raises(TypeError, match="tagger"):
        TT.Countrate("not a tagger", [1])
    rate = TT.Countrate(tagger, [1])
    stale = client.Proxy(rate._pyroUri)
    assert stale.getCaptureDuration() >= 0
    # Freeing the tagger frees this client's measurements on it; a proxy to one says so clearly.
    TT.freeTimeTagger(tagger)
    with pytest.raises(ObjectGone, match="no longer exists"):
        stale.getCaptureDuration()
    with pytest.raises(ObjectGone):
        rate.getData()
    assert TT.getVersion()
    assert TT.createTimeTagger().getSerial()


def test_lost_server_raises_clear_error(start_server):
    srv = start_server()
    TT = client.createProxy(port=srv.port)
    assert TT.getVersion()
    srv.stop()
    with pytest.raises(ServerUnavailable, match=str(srv.port)):
        TT.getVersion()


def test_next_call_reconnects_after_server_restart(start_server):
    first = start_server()
    TT = client.createProxy(port=first.port)
    tagger = TT.createTimeTagger()
    assert tagger.getSerial()
    first.stop()
    with pytest.raises(ServerUnavailable):
        TT.getVersion()
    start_server(port=first.port)
    # The library proxy reconnects by itself; objects of the old server are gone and say so.
    assert TT.getVersion()
    with pytest.raises(ObjectGone, match="no longer exists"):
        tagger.getSerial()
    assert TT.createTimeTagger().getSerial()


def test_sigterm_frees_device_and_exits_zero(start_server):
    srv = start_server()
    TT = client.createProxy(port=srv.port)
    TT.createTimeTagger()
    started = time.monotonic()
    srv.proc.send_signal(signal.SIGTERM)
    assert srv.proc.wait(10) == 0
    assert time.monotonic() - started < 5
    assert "device freed" in srv.log()


def test_marshal_clients_are_refused_with_a_clear_reason(hub):
    import Pyro5.client
    import Pyro5.errors

    proxy = Pyro5.client.Proxy(f"PYRO:TimeTaggerRPC@localhost:{hub.port}")
    proxy._pyroSerializer = "marshal"
    with pytest.raises(Pyro5.errors.CommunicationError, match="marshal serializer is refused"):
        proxy.getVersion()
    assert client.createProxy(port=hub.port).getVersion()


def test_result_object_properties_are_read_not_called(hub):
    TT = client.createProxy(port=hub.port)
    tagger = TT.createTimeTagger()
    counter = TT.Counter(tagger, [1, 2], binwidth=int(1e8), n_values=7)
    time.sleep(0.5)
    data = counter.getDataObject()
    assert isinstance(data.size, int) and data.size > 0
    assert data.overflow is False
    assert data.getData().shape == (2, data.size)


def test_tagger_outlives_a_library_proxy_dropped_at_once(hub):
    import gc

    tagger = client.createProxy(port=hub.port).createTimeTagger()
    gc.collect()  # the library proxy and its connection are gone now
    time.sleep(0.3)
    assert tagger.getSerial()
    rate = client.createProxy(port=hub.port).Countrate(tagger, [1])
    gc.collect()
    assert rate.getData().shape == (1,)
