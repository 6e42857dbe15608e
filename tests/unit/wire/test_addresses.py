"""One HOST:PORT parser and formatter for every option and log line; the name server address needs no environment."""

from __future__ import annotations

import pytest

from taggerhub.config import ServerSettings
from taggerhub.wire import naming
from taggerhub.wire.addresses import (
    LIBRARY_OBJECT_ID,
    format_host_port,
    library_uri,
    parse_host_port,
    peer_address,
    peer_text,
)


@pytest.mark.parametrize(("text", "expected"), [
    ("127.0.0.1:9234", ("127.0.0.1", 9234)),
    ("[::1]:9234", ("::1", 9234)),
    (":9234", ("0.0.0.0", 9234)),
    ("9234", ("0.0.0.0", 9234)),  # without a default port, a bare number is the port
])
def test_host_port_with_the_port_required(text, expected):
    assert parse_host_port(text, "exporter.listen", default_host="0.0.0.0") == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("", ("localhost", 9090)),
    ("ns-host", ("ns-host", 9090)),
    ("ns-host:9190", ("ns-host", 9190)),
    ("[fe80::1]", ("fe80::1", 9090)),
    ("[fe80::1]:9190", ("fe80::1", 9190)),
    ("fe80::1", ("fe80::1", 9090)),  # a bare IPv6 address is a host
])
def test_host_port_with_a_default_port(text, expected):
    assert parse_host_port(text, default_port=9090) == expected


@pytest.mark.parametrize(("text", "message"), [
    ("localhost:http", "exporter.server must be HOST:PORT, got 'localhost:http'"),
    ("localhost:70000", "exporter.server port must be 0..65535, got 70000"),
    ("localhost", "exporter.server must be HOST:PORT"),
    ("[::1", "IPv6 as \\[addr\\]:port"),
    ("[::1]x", "IPv6 as \\[addr\\]:port"),
    ("::1:9234", "exporter.server must be HOST:PORT"),  # ambiguous: IPv6 with a port needs brackets
])
def test_bad_addresses_name_the_option(text, message):
    with pytest.raises(ValueError, match=message):
        parse_host_port(text, "exporter.server")


@pytest.mark.parametrize(("host", "port"), [("localhost", 23000), ("::1", 23000), ("10.0.0.1", 0)])
def test_format_and_parse_round_trip(host, port):
    assert parse_host_port(format_host_port(host, port)) == (host, port)
    assert format_host_port("[::1]", 1) == "[::1]:1"


def test_library_uri_is_the_one_the_vendor_client_asks_for():
    assert library_uri("tagger-pc", 23000) == "PYRO:TimeTaggerRPC@tagger-pc:23000"
    assert library_uri("::1", 23000, "Other") == "PYRO:Other@[::1]:23000"
    assert ServerSettings().object_id == LIBRARY_OBJECT_ID


def test_peer_text_of_socket_addresses():
    assert peer_text(("127.0.0.1", 5000)) == "127.0.0.1:5000"
    assert peer_text(("::1", 5000, 0, 0)) == "[::1]:5000"
    assert peer_text("/run/taggerhub.sock") == "/run/taggerhub.sock"
    assert peer_text(None) == "?"


def test_peer_address_of_a_connection_that_is_gone():
    class Gone:
        class sock:  # noqa: N801
            @staticmethod
            def getpeername():
                raise OSError("not connected")

    assert peer_address(Gone()) is None
    assert peer_address(object()) is None


def test_name_server_address_ignores_the_environment(monkeypatch):
    monkeypatch.setenv("TAGGERHUB_NS", "elsewhere:1")
    assert naming.parse_ns_address(None) == ("localhost", 9090)
    assert naming.parse_ns_address("ns:9190") == ("ns", 9190)
    assert naming.parse_ns_address("[::1]:9190") == ("::1", 9190)
    with pytest.raises(ValueError, match="name server address must be HOST:PORT, got 'ns:x'"):
        naming.parse_ns_address("ns:x")
