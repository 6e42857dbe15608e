"""Real TLS between real processes: server verification, mutual TLS user mapping, expiry, slow handshakes."""

from __future__ import annotations

import datetime as dt
import socket
import time

import Pyro5.errors
import pytest

from helpers import trickle
from taggerhub import client
from taggerhub.access import certs
from taggerhub.access.tls import client_context
from taggerhub.errors import AccessDenied, ServerUnavailable


def tls_env(pki, require_client_cert=False, server_name="server", **extra):
    return {
        "TAGGERHUB_TLS_ENABLED": "true",
        "TAGGERHUB_TLS_CERT_FILE": str(pki / f"{server_name}.pem"),
        "TAGGERHUB_TLS_KEY_FILE": str(pki / f"{server_name}-key.pem"),
        "TAGGERHUB_TLS_CA_FILE": str(pki / "ca.pem"),
        "TAGGERHUB_TLS_REQUIRE_CLIENT_CERT": str(require_client_cert).lower(),
        **extra,
    }


def log_shows(server, text: str, timeout_s: float = 5.0) -> bool:
    """The server logs a refusal just after the client sees it: wait a little for the line."""
    deadline = time.monotonic() + timeout_s
    while text not in server.server.log():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def refused(server, admin_proxy) -> dict:
    return admin_proxy.hub_metrics()["rpc"]["refused_handshakes"]


def test_token_over_tls_works_and_plaintext_client_is_refused(start_auth_server, lab_pki):
    server = start_auth_server(**tls_env(lab_pki))
    TT = client.createProxy(port=server.port, token=server.tokens["otto"], tls_ca=str(lab_pki / "ca.pem"))
    tagger = TT.createTimeTagger()
    tagger.setTestSignal(1, True)  # proxies returned by calls inherit TLS
    assert tagger.getTestSignal(1) is True
    with pytest.raises(Pyro5.errors.CommunicationError):
        client.createProxy(port=server.port, token=server.tokens["otto"])  # plaintext
    assert tagger.getTestSignal(1) is True  # still serving
    admin = client.createProxy(port=server.port, token=server.tokens["ada"], tls_ca=str(lab_pki / "ca.pem"))
    assert refused(server, admin).get("tls", 0) >= 1


def test_client_refuses_server_signed_by_another_ca(start_auth_server, lab_pki, tmp_path):
    server = start_auth_server(**tls_env(lab_pki))
    foreign = tmp_path / "foreign"
    certs.init(foreign, ["localhost"])
    with pytest.raises(ServerUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
        client.createProxy(port=server.port, token=server.tokens["otto"], tls_ca=str(foreign / "ca.pem"))


def test_client_refuses_expired_server_certificate(start_auth_server, lab_pki):
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
    certs.issue(lab_pki, "expired-server", "localhost", hosts=["localhost", "127.0.0.1"],
                not_before=past - dt.timedelta(days=1), not_after=past)
    server = start_auth_server(**tls_env(lab_pki, server_name="expired-server"))
    with pytest.raises(ServerUnavailable, match="certificate has expired"):
        client.createProxy(port=server.port, token=server.tokens["otto"], tls_ca=str(lab_pki / "ca.pem"))


def test_mutual_tls_maps_certificate_common_name_to_user(start_auth_server, lab_pki):
    server = start_auth_server(**tls_env(lab_pki, require_client_cert=True))
    ca = str(lab_pki / "ca.pem")

    def as_cert(name, token=""):
        return client.createProxy(port=server.port, token=token, tls_ca=ca, tls_cert=str(lab_pki / f"{name}.pem"),
                                  tls_key=str(lab_pki / f"{name}-key.pem"))

    ada = as_cert("ada")  # no token: the certificate says who this is
    me = next(r for r in ada.hub_sessions() if r["you"])
    assert (me["user"], me["role"]) == ("ada", "admin")
    oscar = as_cert("oscar")
    with pytest.raises(AccessDenied, match="'oscar' is observer"):
        oscar.createTimeTagger().setTestSignal(1, True)
    with pytest.raises(Pyro5.errors.CommunicationError, match="'mallory' is not in the users file"):
        as_cert("mallory")
    with pytest.raises(Pyro5.errors.CommunicationError, match="certificate is for 'oscar'"):
        as_cert("oscar", token=server.tokens["otto"])
    with pytest.raises(Pyro5.errors.CommunicationError):  # no certificate at all
        client.createProxy(port=server.port, token=server.tokens["otto"], tls_ca=ca)
    counts = refused(server, ada)
    assert counts["unknown_user"] >= 1 and counts["cert_mismatch"] >= 1 and counts["tls"] >= 1


def test_expired_client_certificate_refused(start_auth_server, lab_pki):
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=2)
    certs.issue(lab_pki, "ada-expired", "ada", client=True, not_before=past - dt.timedelta(days=1), not_after=past)
    server = start_auth_server(**tls_env(lab_pki, require_client_cert=True))
    ca = str(lab_pki / "ca.pem")
    # With a ready context: createProxy(tls_cert=...) refuses an expired certificate before dialing (the server's
    # own refusal is what this test is about; test_client_errors.py beside it checks the client's message).
    expired = client_context(ca, str(lab_pki / "ada-expired.pem"), str(lab_pki / "ada-expired-key.pem"))
    with pytest.raises(Pyro5.errors.CommunicationError):
        client.createProxy(port=server.port, ssl_context=expired)
    ada = client.createProxy(port=server.port, tls_ca=ca, tls_cert=str(lab_pki / "ada.pem"),
                             tls_key=str(lab_pki / "ada-key.pem"))
    assert refused(server, ada)["tls"] >= 1
    assert log_shows(server, "certificate has expired")


def test_slow_tls_client_neither_blocks_others_nor_keeps_its_socket(start_auth_server, lab_pki):
    server = start_auth_server(**tls_env(lab_pki), TAGGERHUB_SERVER_HANDSHAKE_TIMEOUT_S="3")
    ca = str(lab_pki / "ca.pem")
    silent = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(3)]  # never say hello
    try:
        started = time.monotonic()
        TT = client.createProxy(port=server.port, token=server.tokens["otto"], tls_ca=ca)
        assert TT.getVersion()
        assert time.monotonic() - started < 2.5  # served while the silent ones still hang
        for sock in silent:
            sock.settimeout(10)
            assert sock.recv(10) == b""  # dropped by the server after the handshake timeout
        assert 2.5 < time.monotonic() - started < 10
    finally:
        for sock in silent:
            sock.close()
    admin = client.createProxy(port=server.port, token=server.tokens["ada"], tls_ca=ca)
    assert refused(server, admin)["handshake_timeout"] >= 3


def test_trickling_clients_are_cut_at_the_handshake_deadline(start_auth_server, lab_pki):
    """A client sending its ClientHello a byte every 0.3 s is cut at the handshake deadline."""
    server = start_auth_server(**tls_env(lab_pki), TAGGERHUB_SERVER_HANDSHAKE_TIMEOUT_S="1.5")
    hello = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64  # start of a TLS ClientHello
    closed, elapsed = trickle(server.port, hello, 0.3)
    assert closed and 1.3 < elapsed < 8, f"closed={closed} after {elapsed:.1f} s"
    admin = client.createProxy(port=server.port, token=server.tokens["ada"], tls_ca=str(lab_pki / "ca.pem"))
    assert refused(server, admin)["handshake_timeout"] >= 1


def test_large_arrays_cross_tls_intact(start_auth_server, lab_pki):
    import numpy as np

    server = start_auth_server(**tls_env(lab_pki))
    TT = client.createProxy(port=server.port, token=server.tokens["otto"], tls_ca=str(lab_pki / "ca.pem"))
    tagger = TT.createTimeTagger()
    tagger.setTestSignal([1, 2], True)
    counter = TT.Counter(tagger, [1, 2], binwidth=int(1e6), n_values=400_000)  # 2 x 400k int32: 3.2 MB
    time.sleep(0.3)
    data = counter.getData()
    assert data.shape == (2, 400_000) and data.dtype == np.int32
    assert data.sum() > 0 and np.array_equal(data, data.astype(np.int64).astype(np.int32))
    assert tagger.getTestSignal(1) is True  # the connection is still in step after the big read


def test_client_certificate_from_a_foreign_ca_refused(start_auth_server, lab_pki, tmp_path):
    foreign = tmp_path / "foreign"
    certs.init(foreign, ["localhost"], clients=["ada"])  # same user name, wrong CA
    server = start_auth_server(**tls_env(lab_pki, require_client_cert=True))
    with pytest.raises(Pyro5.errors.CommunicationError):
        client.createProxy(port=server.port, tls_ca=str(lab_pki / "ca.pem"), tls_cert=str(foreign / "ada.pem"),
                           tls_key=str(foreign / "ada-key.pem"))
    assert log_shows(server, "certificate verify failed")


def test_vendor_client_works_with_auth_on_over_mutual_tls(start_auth_server, lab_pki):
    """The vendor's TimeTaggerRPC client cannot send a token, but Pyro5's SSL settings carry a certificate."""
    import subprocess
    import sys
    import textwrap

    server = start_auth_server(**tls_env(lab_pki, require_client_cert=True))
    script = textwrap.dedent(f"""
        from Pyro5 import config
        config.SSL = True
        config.SSL_CACERTS = {str(lab_pki / "ca.pem")!r}
        config.SSL_CLIENTCERT = {str(lab_pki / "oscar.pem")!r}
        config.SSL_CLIENTKEY = {str(lab_pki / "oscar-key.pem")!r}
        from TimeTaggerRPC import client
        TT = client.createProxy(host="localhost", port={server.port})
        tagger = TT.createTimeTagger()
        print(tagger.getSerial())
        try:
            tagger.setTestSignal(1, True)
        except PermissionError as exc:
            print("denied:", exc)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    serial, denied = result.stdout.strip().splitlines()
    assert serial and denied == "denied: setTestSignal() needs role operator or higher; user 'oscar' is observer"
