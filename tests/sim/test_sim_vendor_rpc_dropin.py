"""The vendor's TimeTaggerRPC server, unchanged, serving the simulator to the vendor's client."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest
from TimeTaggerRPC import client as vendor_client

pytestmark = pytest.mark.integration


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def vendor_server(tmp_path):
    port = _free_port()
    log = open(tmp_path / "vendor-server.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([sys.executable, "-m", "taggerhub.sim.vendor_rpc", "--port", str(port)],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while "Server URI" not in (tmp_path / "vendor-server.log").read_text():
            assert proc.poll() is None, (tmp_path / "vendor-server.log").read_text()
            assert time.monotonic() < deadline, "vendor server did not start within 30 s"
            time.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _wait(predicate, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def test_vendor_server_serves_the_simulator_to_the_vendor_client(vendor_server):
    TT = vendor_client.createProxy(host="127.0.0.1", port=vendor_server)
    assert {"configure", "load_lab"}.isdisjoint(dir(TT))  # the lab is not reconfigurable remotely
    assert {"Countrate", "Correlation", "SynchronizedMeasurements", "createTimeTagger"} <= set(dir(TT))
    tagger = TT.createTimeTagger()
    assert tagger.getModel() == "Time Tagger Ultra"
    tagger.setTestSignal([1, 2], True)
    rate = TT.Countrate(tagger, [1, 2])
    rate.startFor(int(2e11))
    _wait(lambda: not rate.isRunning())  # the vendor server leaves out waitUntilFinished
    np.testing.assert_allclose(rate.getData(), [800e3, 800e3], rtol=0.01)

    counter = TT.Counter(tagger, [1], binwidth=int(1e10), n_values=10)
    _wait(lambda: counter.getDataObject().size >= 2)
    snapshot = counter.getDataObject()
    assert snapshot.getData().shape[0] == 1 and (snapshot.getData() == 8000).all()

    delayed = TT.DelayedChannel(tagger, 1, 2000)
    sync = TT.SynchronizedMeasurements(tagger)
    corr = TT.Correlation(sync.getTagger(), delayed.getChannel(), 1, binwidth=100, n_bins=100)
    sync.startFor(int(1e10))
    _wait(lambda: not sync.isRunning())
    assert corr.getIndex()[corr.getData().argmax()] == 2050  # centre of the bin holding +2000 ps
    TT.freeTimeTagger(tagger)
