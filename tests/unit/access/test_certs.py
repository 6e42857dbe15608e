"""The lab CA and certificates, checked with the ssl module and cryptography."""

from __future__ import annotations

import ipaddress
import ssl

import pytest
from cryptography import x509

from taggerhub.access import certs
from taggerhub.access.tls import client_context, server_context
from taggerhub.config import ConfigError, TlsSettings


def test_init_makes_ca_server_and_client_certificates_that_verify(tmp_path):
    made = certs.init(tmp_path, ["localhost", "192.0.2.7"], clients=["alice"])
    assert {p.name for p in made} == {"ca.pem", "server.pem", "server-key.pem", "alice.pem", "alice-key.pem"}
    server = x509.load_pem_x509_certificate((tmp_path / "server.pem").read_bytes())
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("192.0.2.7")]
    alice = x509.load_pem_x509_certificate((tmp_path / "alice.pem").read_bytes())
    assert alice.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == "alice"
    alice.verify_directly_issued_by(x509.load_pem_x509_certificate((tmp_path / "ca.pem").read_bytes()))
    assert (tmp_path / "ca-key.pem").stat().st_mode & 0o077 == 0
    # Both sides load them into real TLS contexts.
    tls = TlsSettings(enabled=True, cert_file=str(tmp_path / "server.pem"), key_file=str(tmp_path / "server-key.pem"),
                      ca_file=str(tmp_path / "ca.pem"), require_client_cert=True)
    assert server_context(tls).verify_mode == ssl.CERT_REQUIRED
    client_context(str(tmp_path / "ca.pem"), str(tmp_path / "alice.pem"), str(tmp_path / "alice-key.pem"))


def test_refuses_to_overwrite_a_ca_and_names_missing_files(tmp_path):
    certs.init(tmp_path, ["localhost"])
    with pytest.raises(ConfigError, match="exists already"):
        certs.init(tmp_path, ["localhost"])
    with pytest.raises(ConfigError, match="no lab CA"):
        certs.issue(tmp_path / "empty", "bob", "bob", client=True)
    with pytest.raises(ConfigError, match=r"tls\.cert_file '/nope\.pem' does not exist"):
        server_context(TlsSettings(enabled=True, cert_file="/nope.pem", key_file="/nope.key"))
    with pytest.raises(ConfigError, match=r"require_client_cert needs tls\.ca_file"):
        server_context(TlsSettings(enabled=True, cert_file=str(tmp_path / "server.pem"),
                                   key_file=str(tmp_path / "server-key.pem"), require_client_cert=True))
