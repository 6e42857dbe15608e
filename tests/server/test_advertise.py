"""The advertised address: what a server behind NAT or in a container puts in the URIs it hands out."""

from __future__ import annotations

import pytest

from taggerhub import client
from taggerhub.config import ConfigError, load_settings

pytestmark = pytest.mark.integration


def test_objects_carry_the_advertised_host_and_listening_port(start_server):
    server = start_server(env={"TAGGERHUB_SERVER_ADVERTISE_HOST": "lab-pc.example"})
    tagger = client.createProxy(port=server.port).createTimeTagger()
    assert tagger._pyroUri.location == f"lab-pc.example:{server.port}"


def test_objects_carry_the_advertised_port_when_one_is_set(start_server):
    server = start_server(env={"TAGGERHUB_SERVER_ADVERTISE_HOST": "127.0.0.1",
                               "TAGGERHUB_SERVER_ADVERTISE_PORT": "40123"})
    tagger = client.createProxy(port=server.port).createTimeTagger()
    assert tagger._pyroUri.location == "127.0.0.1:40123"


def test_without_advertised_host_objects_carry_the_bind_address(start_server):
    server = start_server("--host", "127.0.0.1")
    tagger = client.createProxy(port=server.port).createTimeTagger()
    assert tagger._pyroUri.location == f"127.0.0.1:{server.port}"


def test_advertised_port_out_of_range_is_rejected_by_name():
    with pytest.raises(ConfigError, match=r"server\.advertise_port"):
        load_settings(env={"TAGGERHUB_SERVER_ADVERTISE_PORT": "70000"})
