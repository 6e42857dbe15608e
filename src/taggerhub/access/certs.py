"""Key material for TLS in a lab: a small CA, a server certificate and client certificates.

``taggerhub certs init DIR --host NAME...`` makes ``ca.pem``/``ca-key.pem`` and
``server.pem``/``server-key.pem`` (valid for the given host names and IP
addresses); ``taggerhub certs client DIR USER`` makes ``USER.pem``/``USER-key.pem``
whose common name is the user, for mutual TLS. Built with ``cryptography``;
keys are ECDSA P-256, written with mode 0600.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ..config import ConfigError

CA_NAME = "ca"
SERVER_NAME = "server"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()))


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _load(directory: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    try:
        cert = x509.load_pem_x509_certificate((directory / f"{CA_NAME}.pem").read_bytes())
        key = serialization.load_pem_private_key((directory / f"{CA_NAME}-key.pem").read_bytes(), None)
    except FileNotFoundError:
        raise ConfigError(f"no lab CA in {directory} (run 'taggerhub certs init {directory}' first)") from None
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return cert, key


def make_ca(directory: str | os.PathLike[str], name: str = "taggerhub lab CA", days: int = 3650) -> Path:
    """Create the lab CA in ``directory`` (refuses to overwrite one)."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    if (out / f"{CA_NAME}.pem").exists():
        raise ConfigError(f"{out / (CA_NAME + '.pem')} exists already; remove it to make a new CA")
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - dt.timedelta(minutes=5)).not_valid_after(_now() + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_key(out / f"{CA_NAME}-key.pem", key)
    _write_cert(out / f"{CA_NAME}.pem", cert)
    return out / f"{CA_NAME}.pem"


def issue(directory: str | os.PathLike[str], name: str, common_name: str, hosts: list[str] | None = None,
          client: bool = False, days: int = 825, not_before: dt.datetime | None = None,
          not_after: dt.datetime | None = None) -> tuple[Path, Path]:
    """Issue ``NAME.pem``/``NAME-key.pem`` signed by the lab CA in ``directory``; return their paths.

    A server certificate names ``hosts`` (DNS names or IP addresses); a client certificate's
    common name is the user it stands for.
    """
    out = Path(directory)
    ca_cert, ca_key = _load(out)
    key = ec.generate_private_key(ec.SECP256R1())
    start = not_before or _now() - dt.timedelta(minutes=5)
    end = not_after or _now() + dt.timedelta(days=days)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH if client
                                              else ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
    )
    if hosts:
        names: list[x509.GeneralName] = []
        for host in hosts:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    _write_key(out / f"{name}-key.pem", key)
    _write_cert(out / f"{name}.pem", cert)
    return out / f"{name}.pem", out / f"{name}-key.pem"


def init(directory: str | os.PathLike[str], hosts: list[str], clients: tuple[str, ...] | list[str] = ()) -> list[Path]:
    """Make the lab CA, the server certificate for ``hosts`` and one client certificate per name."""
    if not hosts:
        raise ConfigError("certs init: give at least one --host (name or address clients use to reach the server)")
    made = [make_ca(directory)]
    made += issue(directory, SERVER_NAME, hosts[0], hosts=hosts)
    for user in clients:
        made += issue(directory, user, user, client=True)
    return made
