"""Why connecting to a server failed, in words a lab user can act on: the cause, then the fix.

Pyro5 and ``ssl`` report symptoms ("connection reset by peer", "EOF occurred in violation
of protocol", "rejected: ..."). :func:`connect_failure` turns them into the cause and what
to do. Where one symptom has two causes (a plain client at a TLS server, and a server that
drops connections, both read as a reset), one short probe asks the server whether it
speaks TLS; it runs only after a failure, never on the way to a working connection.
"""

from __future__ import annotations

import datetime as dt
import socket
import ssl
from pathlib import Path
from typing import Any

import Pyro5.errors

from ..errors import AccessDenied, ObjectGone, ServerUnavailable
from ..wire import pyro_compat

TLS_CA_OPTION = "--tls-ca CA.pem (createProxy(tls_ca=...), or TAGGERHUB_CLIENT_TLS_CA)"
PROBE_TIMEOUT_S = 2.0


_OWN_ERRORS = {"taggerhub.errors.AccessDenied": AccessDenied, "taggerhub.errors.ObjectGone": ObjectGone}


def _rebuild_error(classname: str, data: dict) -> Exception:
    """Turn taggerhub's own exceptions from the server back into their classes (a denied call, a freed object)."""
    cls = _OWN_ERRORS[classname]
    error = cls(*data.get("args", ()))
    error._pyroTraceback = data.get("attributes", {}).get("_pyroTraceback", [])  # type: ignore[attr-defined]
    return error


for _name in _OWN_ERRORS:
    pyro_compat.SerializerBase.register_dict_to_class(_name, _rebuild_error)


class ConnectionRejected(Pyro5.errors.CommunicationError):
    """The server answered and refused this connection (token, certificate, limits): it is reachable."""


class HandshakeClosed(ServerUnavailable):
    """The server hung up during the Pyro5 handshake without a word: overloaded, or not a taggerhub server
    (a plain TimeTaggerRPC server does this to taggerhub's serializer, see :mod:`.vendor_fallback`)."""


def create_connection_explained(proxy: Any, replaceUri: bool = False, connected_socket: Any = None) -> bool:
    """Connect ``proxy``; a failure names its cause and the fix, not just the symptom (the proxy's hook)."""
    try:
        return proxy._create_connection(replaceUri, connected_socket)
    except Pyro5.errors.CommunicationError as exc:
        uri = proxy._pyroUri
        explained = connect_failure(exc, uri.host, uri.port, proxy._taggerhub_ssl is not None)
        if explained is exc:
            raise
        raise explained from exc


# What the server says when it refuses a handshake (access/policy.py), and what the user can do about it.
REJECTION_FIXES = (
    ("access token not valid", "check the token (--token, createProxy(token=...) or TAGGERHUB_TOKEN); a removed or "
                               "rotated token stops working: ask a lab admin for your current one "
                               "(taggerhub user rotate NAME on the server)"),
    ("needs an access token", "on the command line, pass --token"),
    ("client certificate is for", "use the token and the client certificate of the same user"),
    ("is not in the users file", "ask a lab admin to add the user (taggerhub user add NAME)"),
    ("connections (limit", "close connections you no longer need (taggerhub sessions lists them) "
                           "or ask a lab admin to raise the limit"),
)

# TLS alerts the server sends about the client's certificate (ssl names them in the error text).
ALERT_FIXES = (
    ("certificate expired", "the server refused your client certificate because it has expired: "
                            "ask a lab admin for a new one (taggerhub certs client NAME)"),
    ("certificate required", "the server requires a client certificate: pass --tls-cert and --tls-key "
                             "(createProxy(tls_cert=..., tls_key=...))"),
    ("unknown ca", "the server does not trust the CA that signed your client certificate: "
                   "use a certificate from the lab CA"),
    ("bad certificate", "the server refused your client certificate: use one issued by the lab CA "
                        "(taggerhub certs client NAME)"),
)


def connect_failure(exc: Exception, host: str, port: int, tls: bool) -> Exception:
    """The error to raise for a failed connect-and-handshake to ``host:port``; ``exc`` itself if not understood."""
    where = f"{host}:{port}"
    text = str(exc)
    if isinstance(exc, ConnectionRejected) or text.startswith("taggerhub server at "):
        return exc  # already explained (a proxy made by another proxy reconnecting)
    if " rejected: " in text:
        reason = text.split(" rejected: ", 1)[1]
        fix = next((fix for key, fix in REJECTION_FIXES if key in reason), "")
        return ConnectionRejected(f"taggerhub server at {where} rejected the connection: {reason}"
                                  + (f"; {fix}" if fix else ""))
    root = _root_os_error(exc)
    if isinstance(root, ConnectionRefusedError):
        return ServerUnavailable(f"taggerhub server at {where} is not reachable: nothing listens on port {port} "
                                 "(connection refused); check that the server runs there "
                                 "(taggerhub serve) and the host and port (default 23000)")
    if isinstance(root, socket.gaierror):
        return ServerUnavailable(f"taggerhub server at {where} is not reachable: the host name {host!r} "
                                 f"is unknown ({root.strerror}); check --host")
    if isinstance(root, TimeoutError | socket.timeout) or isinstance(exc, Pyro5.errors.TimeoutError):
        return ServerUnavailable(f"taggerhub server at {where} is not reachable: no answer in time; check the "
                                 "host and port, and that no firewall drops the connection")
    if isinstance(root, ssl.SSLCertVerificationError):
        return ServerUnavailable(f"taggerhub server at {where} is not trusted: its TLS certificate failed the check "
                                 f"({root}); pass the lab CA that signed it with {TLS_CA_OPTION}, "
                                 "or renew the server certificate if it has expired")
    alert = next((fix for key, fix in ALERT_FIXES if key in text.lower()), None)
    if tls and alert:
        return ServerUnavailable(f"taggerhub server at {where} refused the TLS connection: {alert}")
    if not _closed_early(exc, root):
        return exc
    speaks = speaks_tls(host, port)
    if not tls and speaks:
        return ServerUnavailable(f"taggerhub server at {where} uses TLS and this client does not (the server "
                                 f"closed the connection: {text}); connect with {TLS_CA_OPTION}")
    if tls and speaks is False:
        return ServerUnavailable(f"taggerhub server at {where} does not use TLS and this client does (the server "
                                 f"closed the TLS handshake: {text}); leave out --tls-ca and TAGGERHUB_CLIENT_TLS_CA, "
                                 "or turn [tls] on at the server")
    if tls:
        return ServerUnavailable(f"taggerhub server at {where} closed the TLS connection ({text}): it may require "
                                 "a client certificate (--tls-cert/--tls-key) or refuse yours (from another CA, "
                                 "or revoked); its log says why")
    return HandshakeClosed(f"taggerhub server at {where} closed the connection during the handshake ({text}): "
                             "it may be overloaded, or not a taggerhub server; its log says why")


def check_client_certificate(cert_file: str | None, where: str) -> None:
    """Refuse to dial with an expired client certificate: the server's refusal of it can reach the client as a
    bare reset (its alert races the client's first send), so say it here, where it is certain."""
    if not cert_file:
        return
    from cryptography import x509

    try:
        certificate = x509.load_pem_x509_certificate(Path(cert_file).read_bytes())
    except (OSError, ValueError):
        return  # unreadable or not PEM: ssl names that problem itself when it loads the file
    expired = certificate.not_valid_after_utc
    if expired < dt.datetime.now(dt.UTC):
        raise ServerUnavailable(f"taggerhub server at {where} would refuse the client certificate {cert_file}: "
                                f"it expired on {expired:%Y-%m-%d %H:%M} UTC; ask a lab admin for a new one "
                                "(taggerhub certs client NAME)")


def speaks_tls(host: str, port: int, timeout_s: float = PROBE_TIMEOUT_S) -> bool | None:
    """Whether the server answers a TLS hello (its certificate unchecked: this only diagnoses); None: no answer."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as sock, context.wrap_socket(sock):
            return True
    except ssl.SSLError as exc:
        return "alert" in str(exc).lower()  # a TLS alert is TLS speaking; anything else is a plain server's hang-up
    except (ConnectionResetError, BrokenPipeError, ConnectionAbortedError):
        return False
    except OSError:
        return None


def _root_os_error(exc: BaseException) -> BaseException | None:
    """The first OSError (ssl errors included) in the chain of causes, if any."""
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 10:
        if isinstance(current, OSError):
            return current
        current = current.__cause__ or current.__context__
        seen += 1
    return None


def _closed_early(exc: Exception, root: Any) -> bool:
    """The server hung up during the handshake: a reset, an EOF, or a TLS error that is no certificate check."""
    if isinstance(exc, Pyro5.errors.ConnectionClosedError):
        return True
    if isinstance(root, ConnectionResetError | BrokenPipeError | ConnectionAbortedError | ssl.SSLError):
        return True
    text = str(exc).lower()
    return any(sign in text for sign in ("connection lost", "reset by peer", "eof occurred", "not enough data"))
