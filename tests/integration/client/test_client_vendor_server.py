"""taggerhub's client against the vendor's own TimeTaggerRPC server (a real process): it works, and says so."""

from __future__ import annotations

import socket
import threading
import warnings

import numpy as np
import Pyro5.errors
import pytest

from helpers import vendor_rpc_server, wait_until
from taggerhub import client
from taggerhub.client.vendor_fallback import VendorServerWarning


@pytest.fixture
def vendor_server(tmp_path):
    """The vendor's unchanged server (`TimeTaggerRPC.server`) over taggerhub's simulator, as bench/ runs it."""
    with vendor_rpc_server(tmp_path / "vendor-server.log") as port:
        yield port


def test_client_falls_back_to_the_vendor_protocol_and_measures(vendor_server):
    with pytest.warns(VendorServerWarning, match="plain TimeTaggerRPC server"):
        TT = client.createProxy(host="127.0.0.1", port=vendor_server)
    assert TT._pyroSerializer == "serpent"
    tagger = TT.createTimeTagger()
    assert tagger._pyroSerializer == "serpent"  # returned proxies inherit the vendor protocol
    assert tagger.getModel() == "Time Tagger Ultra"
    tagger.setTestSignal([1, 2], True)
    rate = TT.Countrate(tagger, [1, 2])
    rate.startFor(int(1e12))
    wait_until(lambda: not rate.isRunning(), 20, "Countrate to finish", 0.05)
    data = rate.getData()
    assert isinstance(data, np.ndarray)  # arrays arrive as arrays (the vendor's base64 .npy)
    np.testing.assert_allclose(data, [800e3, 800e3], rtol=0.01)

    # proxies passed as arguments, and enums, work through the vendor server too
    delayed = TT.DelayedChannel(tagger, 1, 2000)
    sync = TT.SynchronizedMeasurements(tagger)
    corr = TT.Correlation(sync.getTagger(), delayed.getChannel(), 1, binwidth=100, n_bins=100)
    sync.startFor(int(1e10))
    wait_until(lambda: not sync.isRunning(), 20, "the synchronized measurements to finish", 0.05)
    assert corr.getIndex()[corr.getData().argmax()] == 2050
    assert int(TT.ChannelEdge.Falling) == int(TT.ChannelEdge.Rising) + 1
    with pytest.raises(AttributeError):  # the vendor server has no constants call, as with the vendor client
        _ = TT.CHANNEL_UNUSED
    TT.freeTimeTagger(tagger)


def test_token_is_not_handed_to_a_vendor_server(vendor_server):
    with pytest.warns(VendorServerWarning, match="token was not sent"):
        TT = client.createProxy(host="127.0.0.1", port=vendor_server, token="secret-token")
    assert "secret-token" not in repr(TT._pyroHandshake)
    assert TT.createTimeTagger().getSerial()


def test_client_on_taggerhub_server_keeps_its_own_protocol(server):
    with warnings.catch_warnings():
        warnings.simplefilter("error", VendorServerWarning)
        TT = client.createProxy(port=server.port)
    assert TT._pyroSerializer == "taggerhub"
    import taggerhub.sim

    assert TT.CHANNEL_UNUSED == taggerhub.sim.CHANNEL_UNUSED  # taggerhub's own call, not in the vendor subset


def test_a_server_that_is_neither_names_the_problem():
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    stop = threading.Event()

    def close_every_connection() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            conn.recv(4096)
            conn.close()

    thread = threading.Thread(target=close_every_connection, daemon=True)
    thread.start()
    try:
        with pytest.raises(Pyro5.errors.CommunicationError,
                           match=f"127.0.0.1:{port} closed the connection during the Pyro5 handshake.*"
                                 "check that host and port name a taggerhub or TimeTaggerRPC server"):
            client.createProxy(host="127.0.0.1", port=port)
    finally:
        stop.set()
        thread.join(5)
        listener.close()
