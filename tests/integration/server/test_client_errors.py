"""Each way a connection fails names its cause and the fix, over real connections (createProxy, `taggerhub status`)."""

from __future__ import annotations

import datetime as dt

import pytest
from Pyro5.errors import CommunicationError

from helpers import free_port, wait_until
from taggerhub import client
from taggerhub.access import certs
from taggerhub.access.users import UserStore
from taggerhub.cli.main import main
from taggerhub.client.explain import ConnectionRejected
from taggerhub.errors import ServerUnavailable


def tls_env(pki) -> dict[str, str]:
    return {"TAGGERHUB_TLS_ENABLED": "true", "TAGGERHUB_TLS_CERT_FILE": str(pki / "server.pem"),
            "TAGGERHUB_TLS_KEY_FILE": str(pki / "server-key.pem"), "TAGGERHUB_TLS_CA_FILE": str(pki / "ca.pem")}


def both_say(capsys, port: int, error: type, *needles: str, **connect: str) -> None:
    """createProxy raises ``error`` and `taggerhub status` exits 1; both messages hold every needle."""
    with pytest.raises(error) as raised:
        client.createProxy(host="127.0.0.1", port=port, **connect)
    options = [f"--{name.replace('_', '-')}={value}" for name, value in connect.items()]
    assert main(["status", "--host", "127.0.0.1", "--port", str(port), *options]) == 1
    printed = capsys.readouterr().err
    for text in (str(raised.value), printed):
        for needle in needles:
            assert needle in text, text
    assert printed.count("\n") == 1 and printed.startswith(f"taggerhub status: taggerhub server at 127.0.0.1:{port} ")


def test_bad_and_missing_token_read_as_rejected_with_the_fix_not_as_unreachable(start_auth_server, capsys):
    server = start_auth_server()
    both_say(capsys, server.port, ConnectionRejected, "rejected the connection: access token not valid",
             "TAGGERHUB_TOKEN", "taggerhub user rotate NAME", token="x" * 43)
    both_say(capsys, server.port, ConnectionRejected, "needs an access token", "--token")
    with pytest.raises(CommunicationError) as raised:
        client.createProxy(port=server.port)
    assert "not reachable" not in str(raised.value)  # it answered: refused, not unreachable


def test_a_rotated_token_is_refused_naming_rotation_and_who_to_ask(start_auth_server, capsys):
    server = start_auth_server()
    old = server.tokens["otto"]
    assert client.createProxy(port=server.port, token=old).getVersion()
    new = UserStore(server.users_file).rotate("otto")
    wait_until(lambda: client.createProxy(port=server.port, token=new), timeout_s=10, what="the rotation seen",
               retry_on=(ConnectionRejected,))  # the server re-reads the file when its mtime changes
    both_say(capsys, server.port, ConnectionRejected, "removed or rotated", "ask a lab admin", token=old)


def test_plain_client_at_a_tls_server_is_told_to_use_tls_ca(start_auth_server, lab_pki, capsys):
    server = start_auth_server(**tls_env(lab_pki))
    both_say(capsys, server.port, ServerUnavailable, "uses TLS and this client does not", "--tls-ca",
             token=server.tokens["otto"])


def test_tls_client_at_a_plain_server_is_told_the_server_has_no_tls(start_auth_server, lab_pki, capsys):
    server = start_auth_server()
    both_say(capsys, server.port, ServerUnavailable, "does not use TLS and this client does", "leave out --tls-ca",
             token=server.tokens["otto"], tls_ca=str(lab_pki / "ca.pem"))


def test_wrong_port_says_nothing_listens_there(capsys):
    port = free_port()
    both_say(capsys, port, ServerUnavailable, "is not reachable: nothing listens on port", "default 23000")


def test_expired_client_certificate_and_untrusted_server_name_their_certificate(start_auth_server, lab_pki, tmp_path,
                                                                               capsys):
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=2)
    certs.issue(lab_pki, "otto-expired", "otto", client=True, not_before=past - dt.timedelta(days=1), not_after=past)
    server = start_auth_server(**tls_env(lab_pki), TAGGERHUB_TLS_REQUIRE_CLIENT_CERT="true")
    ca = str(lab_pki / "ca.pem")
    both_say(capsys, server.port, ServerUnavailable, "would refuse the client certificate", "it expired on",
             "taggerhub certs client NAME", tls_ca=ca, tls_cert=str(lab_pki / "otto-expired.pem"),
             tls_key=str(lab_pki / "otto-expired-key.pem"))
    foreign = tmp_path / "foreign"
    certs.init(foreign, ["localhost"], clients=[])
    both_say(capsys, server.port, ServerUnavailable, "is not trusted: its TLS certificate failed", "--tls-ca",
             token=server.tokens["otto"], tls_ca=str(foreign / "ca.pem"))
