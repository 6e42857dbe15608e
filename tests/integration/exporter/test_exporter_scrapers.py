"""`taggerhub exporter` as a process: loopback by default, scraper credentials, user names only for some, HTTPS."""

from __future__ import annotations

import base64
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from helpers import free_port, stop_process, wait_for_port
from taggerhub import client
from taggerhub.access import certs
from taggerhub.config import ExporterSettings
from taggerhub.lab.exporter import parse_address
from taggerhub.lab.exporter.scrapers import ScraperAuth
from taggerhub.server.listener import is_loopback


def new_scraper(name: str) -> tuple[str, str]:
    """A credential made the way an admin makes one: `taggerhub exporter --new-scraper NAME`."""
    out = subprocess.run([sys.executable, "-m", "taggerhub", "exporter", "--new-scraper", name],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    token = next(line.split("holding: ")[1] for line in out.splitlines() if "credentials_file" in line)
    entry = next(line.strip('"') for line in out.splitlines() if line.startswith('"'))
    return token, entry


def start_exporter(tmp_path: Path, server_port: int, toml: str, *extra: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    config = tmp_path / f"exporter-{port}.toml"
    config.write_text(f'[exporter]\nserver = "127.0.0.1:{server_port}"\ntimeout_s = 10.0\n{toml}')
    log = open(tmp_path / f"exporter-{port}.log", "w")  # noqa: SIM115 - the process holds it
    proc = subprocess.Popen([sys.executable, "-m", "taggerhub", "exporter", "--config", str(config),
                             "--listen", f"127.0.0.1:{port}", *extra], stdout=log, stderr=subprocess.STDOUT)
    wait_for_port(port, proc=proc)
    return proc, port


def scrape(url: str, authorization: str | None = None, context: ssl.SSLContext | None = None) -> dict:
    request = urllib.request.Request(url, headers={"Authorization": authorization} if authorization else {})
    with urllib.request.urlopen(request, timeout=30, context=context) as response:
        text = response.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def status_of(url: str, authorization: str | None = None) -> int:
    try:
        scrape(url, authorization)
    except urllib.error.HTTPError as exc:
        assert exc.headers["WWW-Authenticate"].startswith("Basic")
        return exc.code
    return 200


def sessions(found: dict) -> dict[tuple, float]:
    return {labels: v for (name, labels), v in found.items() if name == "taggerhub_client_sessions"}


def test_default_listen_address_is_loopback() -> None:
    host, _port = parse_address(ExporterSettings().listen, "exporter.listen")
    assert is_loopback(host)


def test_scrapers_need_a_credential_and_only_listed_ones_see_user_names(server, tmp_path: Path) -> None:
    prom_token, prom_entry = new_scraper("prometheus")
    other_token, other_entry = new_scraper("partner")
    proc, port = start_exporter(tmp_path, server.port, f'scrapers = ["{prom_entry}", "{other_entry}"]\n'
                                                       'show_users_to = ["prometheus"]\n')
    url = f"http://127.0.0.1:{port}/metrics"
    me = client.createProxy(port=server.port)
    try:
        me.hub_status()
        assert status_of(url) == 401
        assert status_of(url, "Bearer prometheus.wrong-secret") == 401
        assert status_of(url, "Bearer nobody." + prom_token.split(".", 1)[1]) == 401
        assert status_of(url, "Basic !!notbase64") == 401
        named = scrape(url, f"Bearer {prom_token}")
        assert named[("taggerhub_up", ())] == 1
        # This test's session and the exporter's own, both anonymous admins on a server without auth.
        assert sessions(named) == {(("role", "admin"), ("user", "anonymous")): 2}
        name, secret = other_token.split(".", 1)
        basic = "Basic " + base64.b64encode(f"{name}:{secret}".encode()).decode()
        hidden = scrape(url, basic)
        assert hidden[("taggerhub_up", ())] == 1
        assert sessions(hidden) == {(): 2}  # a total: no user names, no roles
        assert "anonymous" not in str(hidden)
    finally:
        me._pyroRelease()
        stop_process(proc)


def test_without_scrapers_anyone_on_the_port_reads_totals_only(server, tmp_path: Path) -> None:
    proc, port = start_exporter(tmp_path, server.port, "")
    try:
        found = scrape(f"http://127.0.0.1:{port}/metrics", "Bearer anything.at-all")
        assert found[("taggerhub_up", ())] == 1
        assert sessions(found) == {(): 1}
    finally:
        stop_process(proc)


def test_https_with_a_silent_client_holding_a_connection(server, tmp_path: Path) -> None:
    pki = tmp_path / "pki"
    certs.init(pki, ["localhost", "127.0.0.1"])
    token, entry = new_scraper("prometheus")
    proc, port = start_exporter(tmp_path, server.port, f'scrapers = ["{entry}"]\nshow_users_to = ["*"]\n',
                                "--cert-file", str(pki / "server.pem"), "--key-file", str(pki / "server-key.pem"))
    context = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    silent = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]  # never start TLS
    try:
        started = time.monotonic()
        found = scrape(f"https://127.0.0.1:{port}/metrics", f"Bearer {token}", context)
        assert time.monotonic() - started < 5  # the silent sockets do not hold up the accept loop
        assert sessions(found) == {(("role", "admin"), ("user", "anonymous")): 1}
        with pytest.raises((urllib.error.URLError, ConnectionError)):
            scrape(f"http://127.0.0.1:{port}/metrics", f"Bearer {token}")  # plain HTTP to an HTTPS port
    finally:
        for sock in silent:
            sock.close()
        stop_process(proc)


def test_bad_scraper_entries_and_tls_files_are_named() -> None:
    from taggerhub.config import ConfigError
    from taggerhub.lab.exporter.serving import tls_context

    with pytest.raises(ConfigError, match="expected NAME=sha256:HEX"):
        ScraperAuth(["prometheus:abc"], [])
    with pytest.raises(ConfigError, match="64 hex digits"):
        ScraperAuth(["prometheus=sha256:abcd"], [])
    with pytest.raises(ConfigError, match=r"cert_file and exporter\.key_file go together"):
        tls_context(ExporterSettings(cert_file="x.pem"))
    with pytest.raises(ConfigError, match=r"nope\.pem"):
        tls_context(ExporterSettings(cert_file="nope.pem", key_file="nope-key.pem"))
    result = subprocess.run([sys.executable, "-m", "taggerhub", "exporter", "--listen", "127.0.0.1:0"],
                            capture_output=True, text=True, timeout=60,
                            env={"TAGGERHUB_EXPORTER_SCRAPERS": "prometheus=md5:00", "PATH": "/usr/bin"})
    assert result.returncode == 2 and "exporter.scrapers: expected NAME=sha256:HEX" in result.stderr
