"""Discovery through a real Pyro5 name server: three `taggerhub serve` processes register their taggers,
`taggerhub ls` lists them, clients reach them by name and alias, and restarts of either side heal."""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import helpers
from helpers import free_port
from taggerhub.client.proxy import createProxy
from taggerhub.config import ConfigError, load_settings
from taggerhub.lab.listing import listing
from taggerhub.wire import naming

pytestmark = pytest.mark.slow

# host name -> serials of its simulated taggers (model Ultra for the first, Time Tagger 20 for others)
LAB = {"lab1": ["1111000SIM"], "lab2": ["2138000SIM", "2222000SIM"], "lab3": ["3333000SIM"]}
ALIASES = {"lab1": "lab1-ultra=1111000SIM", "lab2": "lab2-ultra=2138000SIM", "lab3": "lab3-ultra=3333000SIM"}
MODELS = {"1111000SIM": "Time Tagger Ultra", "2138000SIM": "Time Tagger Ultra", "2222000SIM": "Time Tagger 20",
          "3333000SIM": "Time Tagger Ultra"}


# Errors count as "not yet": the name server or a tagger host may be down for a while.
wait_until = functools.partial(helpers.wait_until, retry_on=(Exception,))


class NameServer:
    """`taggerhub nameserver` (Pyro5's name server) as a subprocess on a fixed loopback port."""

    def __init__(self, tmp_path: Path, port: int):
        self.port, self.tmp_path, self.proc = port, tmp_path, None

    def start(self) -> NameServer:
        log = open(self.tmp_path / f"ns-{time.monotonic_ns()}.log", "w")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen([sys.executable, "-m", "taggerhub", "nameserver", "--host", "127.0.0.1",
                                      "--port", str(self.port)], stdout=log, stderr=subprocess.STDOUT)
        log.close()
        wait_until(lambda: naming.locate("127.0.0.1", self.port), what="name server up")
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def nameserver(tmp_path: Path) -> Iterator[NameServer]:
    ns = NameServer(tmp_path, free_port()).start()
    yield ns
    ns.kill()


def lab_file(tmp_path: Path, host: str) -> Path:
    devices = "".join(
        f'[[device]]\nserial = "{serial}"\nmodel = "{MODELS[serial]}"\n\n' for serial in LAB[host])
    path = tmp_path / f"{host}.toml"
    path.write_text(devices)
    return path


def discovery_env(ns_port: int, host: str, **extra: str) -> dict[str, str]:
    return {"TAGGERHUB_DISCOVERY_ENABLED": "true", "TAGGERHUB_DISCOVERY_NS_HOST": "127.0.0.1",
            "TAGGERHUB_DISCOVERY_NS_PORT": str(ns_port), "TAGGERHUB_DISCOVERY_HOST_NAME": host,
            "TAGGERHUB_DISCOVERY_ALIASES": ALIASES[host], "TAGGERHUB_DISCOVERY_REFRESH_S": "0.5", **extra}


@pytest.fixture
def lab(tmp_path: Path, nameserver: NameServer, start_server) -> dict:
    """Three servers, four simulated taggers, all registered with the name server."""
    servers = {host: start_server("--sim-config", str(lab_file(tmp_path, host)),
                                  env=discovery_env(nameserver.port, host)) for host in LAB}
    wait_until(lambda: len(listed(nameserver.port)) == 4, what="four taggers listed")
    return servers


def ls(ns_port: int, *extra: str) -> list[dict]:
    result = subprocess.run([sys.executable, "-m", "taggerhub", "ls", "--ns", f"127.0.0.1:{ns_port}", "--json",
                             *extra], capture_output=True, text=True, timeout=30,
                            env={k: v for k, v in os.environ.items() if k != "TAGGERHUB_TOKEN"})
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def listed(ns_port: int) -> list[dict]:
    """The same listing in this process: quicker to poll than starting `taggerhub ls` each time."""
    return [row.as_dict() for row in listing("127.0.0.1", ns_port)]


def expected_listing() -> list[tuple[str, str, str, str]]:
    return sorted((f"taggerhub.{host}.{serial}", host, MODELS[serial], serial)
                  for host, serials in LAB.items() for serial in serials)


def summary(rows: list[dict]) -> list[tuple[str, str, str, str]]:
    return sorted((r["name"], r["host"], r["model"], r["serial"]) for r in rows)


def all_reachable(ns_port: int) -> bool:
    rows = listed(ns_port)
    return summary(rows) == expected_listing() and all(r["status"] in ("free", "open") for r in rows)


def test_ls_lists_every_tagger_of_three_servers(lab: dict, nameserver: NameServer) -> None:
    rows = ls(nameserver.port)
    assert summary(rows) == expected_listing()
    assert {r["serial"]: r["aliases"] for r in rows} == {
        "1111000SIM": ["lab1-ultra"], "2138000SIM": ["lab2-ultra"], "2222000SIM": [], "3333000SIM": ["lab3-ultra"]}
    assert {r["status"] for r in rows} == {"free"}
    assert all(r["users"] == [] and r["sessions"] == 0 for r in rows)

    text = subprocess.run([sys.executable, "-m", "taggerhub", "ls", "--ns", f"127.0.0.1:{nameserver.port}"],
                          capture_output=True, text=True, timeout=30).stdout
    assert text.splitlines()[0].split() == ["NAME", "ALIASES", "HOST", "MODEL", "SERIAL", "STATUS", "USERS"]
    assert any(line.split()[:2] == ["taggerhub.lab2.2222000SIM", "-"] for line in text.splitlines())


def test_clients_reach_each_tagger_by_name_and_alias(lab: dict, nameserver: NameServer) -> None:
    for host, serials in LAB.items():
        for serial in serials:
            tt = createProxy(name=f"taggerhub.{host}.{serial}", ns_host="127.0.0.1", ns_port=nameserver.port)
            tagger = tt.createTimeTagger()
            assert tagger.getSerial() == serial
            assert tagger.getModel() == MODELS[serial]
            tt.freeTimeTagger(tagger)
    os.environ["TAGGERHUB_NS"] = f"127.0.0.1:{nameserver.port}"
    try:
        tt = createProxy(name="lab2-ultra")  # address from $TAGGERHUB_NS
    finally:
        del os.environ["TAGGERHUB_NS"]
    tagger = tt.createTimeTagger()
    assert tagger.getSerial() == "2138000SIM"
    other = tt.createTimeTagger("2222000SIM")  # an explicit serial still wins
    assert other.getSerial() == "2222000SIM"

    rows = {r["serial"]: r for r in ls(nameserver.port)}
    assert rows["2138000SIM"]["status"] == "open" and rows["2222000SIM"]["status"] == "open"
    assert rows["2138000SIM"]["users"] == ["anonymous"]
    assert rows["1111000SIM"]["status"] == "free"


def test_unknown_name_is_a_clear_lookup_error(nameserver: NameServer) -> None:
    with pytest.raises(LookupError, match="'lab9-x' not found in the name server"):
        createProxy(name="lab9-x", ns_host="127.0.0.1", ns_port=nameserver.port)
    nameserver.kill()
    with pytest.raises(LookupError, match=f"no name server at 127.0.0.1:{nameserver.port}"):
        createProxy(name="lab2-ultra", ns_host="127.0.0.1", ns_port=nameserver.port)


def test_listing_heals_after_the_name_server_restarts(lab: dict, nameserver: NameServer) -> None:
    nameserver.kill()
    result = subprocess.run([sys.executable, "-m", "taggerhub", "ls", "--ns", f"127.0.0.1:{nameserver.port}"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 1 and "no name server at" in result.stderr
    tt = createProxy(port=lab["lab1"].port)  # the servers serve on without it
    assert tt.createTimeTagger().getSerial() == "1111000SIM"
    nameserver.start()  # empty: registrations must come back by themselves
    wait_until(lambda: all_reachable(nameserver.port), timeout_s=10, what="listing complete after NS restart")
    assert "name server not reachable" in lab["lab1"].log()


def test_listing_heals_after_one_server_restarts(lab: dict, nameserver: NameServer, start_server,
                                                  tmp_path: Path) -> None:
    lab2 = lab["lab2"]
    lab2.proc.send_signal(signal.SIGKILL)  # no chance to unregister
    lab2.proc.wait(10)
    rows = {r["serial"]: r["status"] for r in ls(nameserver.port)}
    assert rows == {"1111000SIM": "free", "2138000SIM": "unreachable", "2222000SIM": "unreachable",
                    "3333000SIM": "free"}
    start_server("--sim-config", str(lab_file(tmp_path, "lab2")), port=lab2.port,
                 env=discovery_env(nameserver.port, "lab2"))
    wait_until(lambda: all_reachable(nameserver.port), timeout_s=10, what="listing complete after server restart")
    assert createProxy(name="lab2-ultra", ns_host="127.0.0.1",
                       ns_port=nameserver.port).createTimeTagger().getSerial() == "2138000SIM"


def test_clean_shutdown_unregisters_and_dead_servers_are_pruned(nameserver: NameServer, start_server,
                                                                 tmp_path: Path) -> None:
    short = {"TAGGERHUB_DISCOVERY_STALE_AFTER_S": "2"}
    servers = {host: start_server("--sim-config", str(lab_file(tmp_path, host)),
                                  env=discovery_env(nameserver.port, host, **short)) for host in LAB}
    wait_until(lambda: len(listed(nameserver.port)) == 4, what="four taggers listed")
    servers["lab1"].stop()  # SIGTERM: names removed on the way out
    assert sorted(r["serial"] for r in ls(nameserver.port)) == ["2138000SIM", "2222000SIM", "3333000SIM"]
    servers["lab3"].proc.send_signal(signal.SIGKILL)
    servers["lab3"].proc.wait(10)
    # lab2's own refresh removes lab3's entries once nobody renewed them for stale_after_s.
    wait_until(lambda: sorted(r["serial"] for r in listed(nameserver.port)) == ["2138000SIM", "2222000SIM"],
               timeout_s=10, what="dead server's entries pruned")
    ns = naming.locate("127.0.0.1", nameserver.port)
    assert set(ns.list(prefix="taggerhub.")) == {"taggerhub.lab2.2138000SIM", "taggerhub.lab2.2222000SIM"}


def test_ls_prune_removes_entries_nobody_renews(nameserver: NameServer, tmp_path: Path) -> None:
    ns = naming.locate("127.0.0.1", nameserver.port)
    old = time.time() - 120
    ns.register("taggerhub.gone.9999000SIM", "PYRO:TimeTaggerRPC@127.0.0.1:9", safe=False,
                metadata=naming.metadata(host="gone", serial="9999000SIM", model="Time Tagger X",
                                            kind="name", seen=f"{old:.3f}"))
    (row,) = ls(nameserver.port)
    assert (row["name"], row["status"]) == ("taggerhub.gone.9999000SIM", "stale")
    assert ls(nameserver.port, "--prune") == []
    assert ns.list(prefix="taggerhub.") == {}


def test_discovery_settings_reject_bad_aliases() -> None:
    with pytest.raises(ConfigError, match=r"discovery\.aliases: expected ALIAS=SERIAL, got 'lab2-ultra'"):
        load_settings(env={"TAGGERHUB_DISCOVERY_ALIASES": "lab2-ultra"})
    settings = load_settings(env={"TAGGERHUB_DISCOVERY_ALIASES": "a=1, b=2", "TAGGERHUB_DISCOVERY_ENABLED": "1"})
    assert settings.discovery.enabled and naming.parse_aliases(settings.discovery.aliases) == {"a": "1", "b": "2"}


def test_ls_with_auth_needs_a_token_and_shows_the_users(nameserver: NameServer, start_server,
                                                        tmp_path: Path) -> None:
    from taggerhub.access.users import UserStore

    store = UserStore(tmp_path / "users.toml")
    tokens = {name: store.add(name, role) for name, role in (("ada", "admin"), ("oscar", "observer"),
                                                             ("otto", "operator"))}
    env = discovery_env(nameserver.port, "lab1", TAGGERHUB_AUTH_ENABLED="true",
                        TAGGERHUB_AUTH_USERS_FILE=str(tmp_path / "users.toml"),
                        TAGGERHUB_AUTH_AUDIT_LOG=str(tmp_path / "audit.jsonl"))
    start_server("--sim-config", str(lab_file(tmp_path, "lab1")), env=env)
    (row,) = wait_until(lambda: ls(nameserver.port), what="tagger listed")
    assert row["status"] == "refused" and row["error"]

    tt = createProxy(name="lab1-ultra", ns_host="127.0.0.1", ns_port=nameserver.port, token=tokens["otto"])
    assert tt.createTimeTagger().getSerial() == "1111000SIM"
    for lister in ("oscar", "ada"):  # observer (user from the token) and admin (from hub_sessions)
        (row,) = ls(nameserver.port, "--token", tokens[lister])
        assert (row["status"], row["users"], row["sessions"]) == ("open", ["otto"], 1), lister
