"""Pyro.Daemon lists only the caller's own objects to non-admins, and audits it."""

from __future__ import annotations

from hostile import connect, tls_env

from taggerhub import client


def daemon_proxy(server, pki, user: str):
    TT = connect(server, pki, user)
    uri = TT._pyroUri
    return client.Proxy(f"PYRO:Pyro.Daemon@{uri.host}:{uri.port}", token=server.tokens[user],
                        ssl_context=TT._taggerhub_ssl)


def test_observer_sees_only_own_objects_admin_sees_all(start_auth_server, lab_pki):
    server = start_auth_server(**tls_env(lab_pki))
    otto = connect(server, lab_pki, "otto")
    secret = otto.Countrate(otto.createTimeTagger(), [1])
    oscar = connect(server, lab_pki, "oscar")
    mine = oscar.Countrate(oscar.createTimeTagger(), [1])
    seen = daemon_proxy(server, lab_pki, "oscar").registered()
    assert secret._pyroUri.object not in seen
    assert mine._pyroUri.object in seen
    assert "objects registered" not in daemon_proxy(server, lab_pki, "oscar").info()
    everything = daemon_proxy(server, lab_pki, "ada").registered()
    assert {secret._pyroUri.object, mine._pyroUri.object} <= set(everything)
    listed = [e for e in server.audit() if e.get("method") == "Pyro.Daemon.registered"]
    assert [e["user"] for e in listed] == ["oscar", "ada"]
    assert listed[0]["outcome"].startswith("own objects only")
    # proxies still bind (they ask the daemon object for metadata)
    assert client.Proxy(mine._pyroUri, token=server.tokens["oscar"],
                        ssl_context=mine._taggerhub_ssl).getData() is not None
