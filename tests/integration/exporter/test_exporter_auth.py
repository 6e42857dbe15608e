"""The exporter against a server with access control and TLS: an observer token is all it needs."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from Pyro5.errors import CommunicationError

from taggerhub import client
from taggerhub.access import certs
from taggerhub.access.users import UserStore
from taggerhub.config import ConfigError, ExporterSettings
from taggerhub.lab.exporter import TaggerhubCollector, build_registry


def scrape(collector: TaggerhubCollector) -> dict[tuple[str, tuple], float]:
    text = generate_latest(build_registry(collector)).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


@pytest.fixture
def secured(start_hub, tmp_path: Path):
    """A server with tokens and TLS on; returns (server, tokens, CA file)."""
    pki = tmp_path / "pki"
    certs.init(pki, ["localhost", "127.0.0.1"])
    store = UserStore(tmp_path / "users.toml")
    tokens = {name: store.add(name, role) for name, role in (("oscar", "observer"), ("otto", "operator"))}
    server = start_hub(env={
        "TAGGERHUB_AUTH_ENABLED": "true", "TAGGERHUB_AUTH_USERS_FILE": str(tmp_path / "users.toml"),
        "TAGGERHUB_TLS_ENABLED": "true", "TAGGERHUB_TLS_CERT_FILE": str(pki / "server.pem"),
        "TAGGERHUB_TLS_KEY_FILE": str(pki / "server-key.pem"), "TAGGERHUB_TLS_CA_FILE": str(pki / "ca.pem"),
    })
    return server, tokens, str(pki / "ca.pem")


def test_observer_exporter_reads_everything_and_counts_refusals(secured) -> None:
    server, tokens, ca = secured
    exporter = TaggerhubCollector(ExporterSettings(server=f"127.0.0.1:{server.port}", token=tokens["oscar"],
                                                   tls_ca=ca, channels=[1, 2], timeout_s=10))
    stranger = TaggerhubCollector(ExporterSettings(server=f"127.0.0.1:{server.port}", tls_ca=ca, timeout_s=10))
    plaintext = TaggerhubCollector(ExporterSettings(server=f"127.0.0.1:{server.port}", token=tokens["oscar"],
                                                    timeout_s=10))
    operator = client.createProxy(port=server.port, token=tokens["otto"], tls_ca=ca)
    try:
        operator.hub_status()
        with pytest.raises(CommunicationError, match="access token not valid"):
            client.createProxy(port=server.port, token="not-a-token", tls_ca=ca).hub_status()
        assert scrape(stranger)[("taggerhub_up", ())] == 0  # no token: refused at the handshake
        assert scrape(plaintext)[("taggerhub_server_up", ())] == 0  # no TLS: refused
        found = scrape(exporter)
        assert found[("taggerhub_up", ())] == 1
        sessions = {dict(labels)["user"]: (dict(labels)["role"], v)
                    for (name, labels), v in found.items() if name == "taggerhub_client_sessions"}
        assert sessions == {"oscar": ("observer", 1), "otto": ("operator", 1)}
        refused = {dict(labels)["reason"]: v for (name, labels), v in found.items()
                   if name == "taggerhub_refused_handshakes_total"}
        assert refused["bad_token"] == 1 and refused["no_token"] == 1 and refused["cert_mismatch"] == 0
        assert refused["tls"] + refused["protocol"] >= 1
    finally:
        for collector in (exporter, stranger, plaintext):
            collector.close()
        operator._pyroRelease()


def test_missing_ca_file_is_a_clear_startup_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="CA file"):
        TaggerhubCollector(ExporterSettings(tls_ca=str(tmp_path / "nope.pem")))
