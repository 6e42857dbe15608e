"""The vendor's TimeTaggerRPC server, unchanged, serving the simulator to the vendor's client."""

from __future__ import annotations

import numpy as np
import pytest
from TimeTaggerRPC import client as vendor_client

from helpers import vendor_rpc_server, wait_until


@pytest.fixture
def vendor_server(tmp_path):
    with vendor_rpc_server(tmp_path / "vendor-server.log") as port:
        yield port


def test_vendor_server_serves_the_simulator_to_the_vendor_client(vendor_server):
    TT = vendor_client.createProxy(host="127.0.0.1", port=vendor_server)
    assert {"configure", "load_lab"}.isdisjoint(dir(TT))  # the lab is not reconfigurable remotely
    assert {"Countrate", "Correlation", "SynchronizedMeasurements", "createTimeTagger"} <= set(dir(TT))
    tagger = TT.createTimeTagger()
    assert tagger.getModel() == "Time Tagger Ultra"
    tagger.setTestSignal([1, 2], True)
    rate = TT.Countrate(tagger, [1, 2])
    rate.startFor(int(2e11))
    # the vendor server leaves out waitUntilFinished
    wait_until(lambda: not rate.isRunning(), 20, "Countrate to finish", 0.05)
    np.testing.assert_allclose(rate.getData(), [800e3, 800e3], rtol=0.01)

    counter = TT.Counter(tagger, [1], binwidth=int(1e10), n_values=10)
    wait_until(lambda: counter.getDataObject().size >= 2, 20, "two counter bins", 0.05)
    snapshot = counter.getDataObject()
    assert snapshot.getData().shape[0] == 1 and (snapshot.getData() == 8000).all()

    delayed = TT.DelayedChannel(tagger, 1, 2000)
    sync = TT.SynchronizedMeasurements(tagger)
    corr = TT.Correlation(sync.getTagger(), delayed.getChannel(), 1, binwidth=100, n_bins=100)
    sync.startFor(int(1e10))
    wait_until(lambda: not sync.isRunning(), 20, "the synchronized measurements to finish", 0.05)
    assert corr.getIndex()[corr.getData().argmax()] == 2050  # centre of the bin holding +2000 ps
    TT.freeTimeTagger(tagger)
