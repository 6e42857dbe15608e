"""The vendor's own TimeTaggerRPC client, unchanged, against a taggerhub server."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from TimeTaggerRPC import client as vendor_client


def test_vendor_client_reads_test_signal_countrate(server):
    TT = vendor_client.createProxy(port=server.port)
    tagger = TT.createTimeTagger()
    assert tagger.getModel() == "Time Tagger Ultra"
    tagger.setTestSignal([1, 2], True)
    rate = TT.Countrate(tagger, [1, 2])
    rate.startFor(int(1e12))
    assert rate.waitUntilFinished(10_000)
    data = rate.getData()
    assert isinstance(data, np.ndarray) and data.dtype == np.float64
    np.testing.assert_allclose(data, [800e3, 800e3], rtol=0.01)
    TT.freeTimeTagger(tagger)


def test_vendor_client_gets_enums_like_timetaggerrpc(server):
    TT = vendor_client.createProxy(port=server.port)
    assert TT.Resolution.Standard.value == 0
    assert TT.CoincidenceTimestamp.ListedFirst.value == 3
    assert {m.name for m in TT.GatedChannelInitial} == {"Closed", "Open"}


def test_seed_uri_sharing_between_processes(server):
    TT = vendor_client.createProxy(port=server.port)
    tagger = TT.createTimeTagger()
    serial = tagger.getSerial()
    uri = str(tagger._pyroUri)
    # The cookbook's "Process 2", as written, in its own interpreter.
    process_2 = textwrap.dedent(f"""
        from TimeTaggerRPC import client
        from Pyro5.api import Proxy
        TT = client.createProxy(host='localhost', port={server.port})
        tagger_proxy = Proxy('{uri}')
        print(tagger_proxy.getSerial())
        cr = TT.Countrate(tagger_proxy, [1, 2])
        print(len(cr.getData()))
    """)
    out = subprocess.run([sys.executable, "-c", process_2], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [serial, "2"]
    # Process 2 has gone; the device is still ours.
    assert tagger.getSerial() == serial


def test_seed_threaded_counter_example(server):
    """The cookbook's threading example: two Counters read from two threads."""
    import threading

    TT = vendor_client.createProxy(port=server.port)
    tagger = TT.createTimeTagger()
    tagger.setTestSignal(1, True)
    tagger.setTestSignal(2, True)
    cr1 = TT.Counter(tagger, [1], binwidth=int(1e12), n_values=2)
    cr2 = TT.Counter(tagger, [2], binwidth=int(1e11), n_values=5)
    results: dict[int, list] = {1: [], 2: []}
    stop = threading.Event()

    def worker(key, crate):
        crate._pyroClaimOwnership()
        while not stop.is_set():
            time.sleep(0.2)
            results[key].append(crate.getData())

    threads = [threading.Thread(target=worker, args=(1, cr1)), threading.Thread(target=worker, args=(2, cr2))]
    for t in threads:
        t.start()
    time.sleep(1.5)
    stop.set()
    for t in threads:
        t.join()
    TT.freeTimeTagger(tagger)
    assert results[1] and results[2]
    assert results[1][-1].shape == (1, 2) and results[2][-1].shape == (1, 5)
    # 0.1 s bins of an 800 kHz signal hold 80 000 counts once filled.
    assert results[2][-1][0, -1] == pytest.approx(80_000, rel=0.01)


def test_vendor_client_sends_numpy_floats_as_numpy_2_writes_them(server):
    """Under NumPy 2 the vendor's client writes a numpy float as ``np.float64(x)``; the setting still arrives."""
    # Its own interpreter: in this one taggerhub's codecs already turn numpy scalars into plain numbers.
    script = textwrap.dedent(f"""
        import numpy as np
        from TimeTaggerRPC import client
        TT = client.createProxy(host='localhost', port={server.port})
        tagger = TT.createTimeTagger()
        levels = np.linspace(-0.5, 0.5, 5)
        tagger.setTriggerLevel(1, levels[1])
        print(tagger.getTriggerLevel(1))
        tagger.setTriggerLevel(channel=2, voltage=np.float64(0.125))
        print(tagger.getTriggerLevel(2))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    first, second = (float(v) for v in out.stdout.split())
    assert first == pytest.approx(-0.25, abs=0.01) and second == pytest.approx(0.125, abs=0.01)
