"""The client reads TAGGERHUB_TOKEN, _CLIENT_TLS_*, _NS and _RECORDINGS_CACHE in one place; given arguments win."""

from __future__ import annotations

import contextlib
from pathlib import Path

from taggerhub.client import env, proxy

ENV = {"TAGGERHUB_TOKEN": "tok", "TAGGERHUB_CLIENT_TLS_CA": "ca.pem", "TAGGERHUB_CLIENT_TLS_CERT": "c.pem",
       "TAGGERHUB_CLIENT_TLS_KEY": "k.pem", "TAGGERHUB_NS": "ns:9190"}


def test_token_given_else_environment_else_none():
    assert env.token("mine", ENV) == "mine"
    assert env.token("", ENV) == ""  # an explicit empty token is not replaced
    assert env.token(None, ENV) == "tok"
    assert env.token(None, {"TAGGERHUB_TOKEN": ""}) is None
    assert env.token(None, {}) is None


def test_tls_files_each_given_else_its_variable():
    assert env.tls_files(None, None, None, ENV) == ("ca.pem", "c.pem", "k.pem")
    assert env.tls_files("my-ca.pem", "", None, ENV) == ("my-ca.pem", "", "k.pem")
    assert env.tls_files(None, None, None, {}) == ("", "", "")


def test_name_server_given_else_environment_else_none():
    assert env.ns_address("here:1", ENV) == "here:1"
    assert env.ns_address(None, ENV) == "ns:9190"
    assert env.ns_address(None, {}) is None


def test_recordings_cache_given_else_xdg_cache_else_home(monkeypatch):
    assert env.recordings_cache({"TAGGERHUB_RECORDINGS_CACHE": "/data/rec", "XDG_CACHE_HOME": "/x"}) == Path(
        "/data/rec")
    assert env.recordings_cache({"XDG_CACHE_HOME": "/x"}) == Path("/x/taggerhub/recordings")
    monkeypatch.setenv("HOME", "/home/ada")
    assert env.recordings_cache({"XDG_CACHE_HOME": ""}) == Path("/home/ada/.cache/taggerhub/recordings")


def test_the_environment_is_read_in_client_env_only():
    package = Path(proxy.__file__).parent
    readers = sorted(p.name for p in package.glob("*.py") if "os.environ" in p.read_text())
    assert readers == ["env.py"]
    wire = package.parent / "wire"
    assert not [p.name for p in wire.glob("*.py") if "os.environ" in p.read_text()]


def test_create_proxy_passes_the_environments_name_server_to_resolve(monkeypatch):
    seen = {}

    def resolve(name, ns_host, ns_port):
        seen.update(name=name, ns_host=ns_host, ns_port=ns_port)
        raise LookupError(name)

    import taggerhub.wire.naming as naming

    monkeypatch.setattr(naming, "resolve", resolve)
    monkeypatch.setenv("TAGGERHUB_NS", "ns-from-env:9190")
    with contextlib.suppress(LookupError):
        proxy.createProxy(name="lab2-ultra")
    assert seen == {"name": "lab2-ultra", "ns_host": "ns-from-env:9190", "ns_port": None}
