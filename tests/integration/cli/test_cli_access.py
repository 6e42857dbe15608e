"""The access-management commands end to end: users, certificates, then status and sessions over TLS."""

from __future__ import annotations

import json
import subprocess
import sys


def taggerhub(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "taggerhub", *args], capture_output=True, text=True, timeout=60)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def test_admin_sets_up_users_and_tls_then_lists_and_ends_sessions(tmp_path, start_hub):
    users, pki = str(tmp_path / "users.toml"), tmp_path / "pki"
    admin = taggerhub("user", "--users-file", users, "add", "ada", "--role", "admin")
    assert "shown once" in admin.stderr and admin.stdout.strip().startswith("ada.")
    observer = taggerhub("user", "--users-file", users, "add", "oscar", "--role", "observer").stdout.strip()
    listing = taggerhub("user", "--users-file", users, "list").stdout
    assert "ada" in listing and "admin" in listing and "oscar" in listing and "observer" in listing
    assert "already exists" in taggerhub("user", "--users-file", users, "add", "ada", "--role", "admin",
                                         check=False).stderr
    made = taggerhub("certs", "init", str(pki), "--host", "localhost", "--host", "127.0.0.1").stdout.split()
    assert {p.rsplit("/", 1)[1] for p in made} == {"ca.pem", "server.pem", "server-key.pem"}
    server = start_hub(env={
        "TAGGERHUB_AUTH_ENABLED": "true", "TAGGERHUB_AUTH_USERS_FILE": users,
        "TAGGERHUB_TLS_ENABLED": "true", "TAGGERHUB_TLS_CERT_FILE": str(pki / "server.pem"),
        "TAGGERHUB_TLS_KEY_FILE": str(pki / "server-key.pem"),
    })
    tls = ["--port", str(server.port), "--tls-ca", str(pki / "ca.pem")]
    status = taggerhub("status", *tls, "--token", observer).stdout
    assert "backend   simulator" in status
    denied = taggerhub("sessions", *tls, "--token", observer, check=False)
    assert denied.returncode == 2 and "needs role admin" in denied.stderr
    from taggerhub import client

    TT = client.createProxy(port=server.port, token=observer, tls_ca=str(pki / "ca.pem"))
    TT.createTimeTagger().getSerial()
    rows = taggerhub("sessions", *tls, "--token", admin.stdout.strip()).stdout.splitlines()
    oscar = next(line for line in rows if " oscar " in line)
    session_id = oscar.split()[0]
    ended = taggerhub("sessions", *tls, "--token", admin.stdout.strip(), "--end", session_id).stdout
    assert f"session {session_id} ended" in ended
    taggerhub("user", "--users-file", users, "remove", "oscar")
    assert "oscar" not in taggerhub("user", "--users-file", users, "list").stdout
    listed = json.loads(taggerhub("user", "--users-file", users, "list", "--json").stdout)
    assert [(u["name"], u["role"]) for u in listed] == [("ada", "admin")] and listed[0]["created"]
