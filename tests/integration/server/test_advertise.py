"""The advertised address: what a server behind NAT or in a container puts in the URIs it hands out.

taggerhub's own client reaches returned objects at the address it dialed, whatever the URI
says; the vendor's TimeTaggerRPC client (and a URI passed to another process) uses the URI as
it is, so these tests look through the vendor client.
"""

from __future__ import annotations

import pytest
from TimeTaggerRPC import client as vendor_client

from taggerhub import client
from taggerhub.config import ConfigError, load_settings


def test_objects_carry_the_advertised_host_and_listening_port(start_hub):
    server = start_hub(server={"advertise_host": "lab-pc.example"})
    tagger = vendor_client.createProxy(port=server.port).createTimeTagger()
    assert tagger._pyroUri.location == f"lab-pc.example:{server.port}"


def test_objects_carry_the_advertised_port_when_one_is_set(start_hub):
    server = start_hub(server={"advertise_host": "127.0.0.1", "advertise_port": 40123})
    tagger = vendor_client.createProxy(port=server.port).createTimeTagger()
    assert tagger._pyroUri.location == "127.0.0.1:40123"


def test_without_advertised_host_objects_carry_the_bind_address(start_hub):
    server = start_hub(server={"host": "127.0.0.1"})
    tagger = vendor_client.createProxy(host="127.0.0.1", port=server.port).createTimeTagger()
    assert tagger._pyroUri.location == f"127.0.0.1:{server.port}"


def test_taggerhub_client_keeps_its_own_route_whatever_is_advertised(start_hub):
    server = start_hub(server={"advertise_host": "lab-pc.invalid"})
    TT = client.createProxy(port=server.port)  # kept: the session (and its objects) lives with it
    tagger = TT.createTimeTagger()
    assert tagger.getModel() == "Time Tagger Ultra"


def test_advertised_port_out_of_range_is_rejected_by_name():
    with pytest.raises(ConfigError, match=r"server\.advertise_port"):
        load_settings(env={"TAGGERHUB_SERVER_ADVERTISE_PORT": "70000"})
