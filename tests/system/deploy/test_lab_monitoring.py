"""Lab-wide monitoring and discovery: three lab PCs converged by one playbook run.

Three systemd containers on a network of their own stand in for a lab. Each simulates a
tagger with its own serial and a Poisson source of its own rate on channel 1 (`pc-c` a
second tagger too, which nobody opens until a test does). `pc-a` is
both `taggerhub_monitoring_host` and `taggerhub_nameserver_host`: the role installs
Prometheus there (Debian's package), writes the file_sd list of all three exporters from
the inventory and the shipped alert rules, and runs the Pyro5 name server. Auth and TLS are
on as a lab admin runs them: one lab CA made on the controller signs every PC's server
certificate, and each user has one token for the whole lab. The tests then ask that
Prometheus (its HTTP API) and that name server (`taggerhub ls`, with the lab-wide monitoring
user's token and the one CA file) about the lab.
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml
from labpcs import VENV_BIN, LabPCs, changed_tasks, native_simulator_vars, playbook, run, wheelhouse

import helpers

PREFIX = f"labmon-{os.getpid()}"
# Inventory name -> (serial, Poisson rate on channel 1 in Hz): a different signal on every PC.
LAB = {"pc-a": ("1111000LMA", 12e3), "pc-b": ("2222000LMB", 30e3), "pc-c": ("3333000LMC", 60e3)}
SECOND = ("pc-c", "3333000LMD", 20e3)  # pc-c's second tagger
NS_PORT = 9190  # Prometheus has 9090 on the same host
MONITOR = "lab-monitor"  # the lab-wide monitoring user (observer)

# The first test's time includes the module's lab: wheels, images, booting the PCs and the first converge
# take up to 8 minutes when the other worker of a parallel run builds its own lab beside it (README, "Tests").
pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(900)]


def wait_until(predicate: Callable[[], Any], timeout_s: float, what: str) -> Any:
    return helpers.wait_until(predicate, timeout_s, what, every_s=0.5)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    helpers.require_docker()
    tmp = tmp_path_factory.mktemp("labmon")
    wheels = wheelhouse(tmp_path_factory)
    run("docker", "network", "create", "--label", "org.taggerhub.test=labmon", PREFIX)
    pcs = LabPCs(PREFIX, network=PREFIX)
    try:
        image = LabPCs.build_image("labpc")
        for host in LAB:  # boot side by side
            pcs.start(host, image, "--volume", "/sys/fs/cgroup:/sys/fs/cgroup:ro")
        for host in LAB:
            pcs.wait_booted(host)
        subnet = json.loads(run("docker", "network", "inspect", PREFIX).stdout)[0]["IPAM"]["Config"][0]["Subnet"]
        hosts = {}
        for host, (serial, rate) in LAB.items():
            lab_file = tmp / f"{host}-lab.toml"
            devices = [(serial, rate)] + ([SECOND[1:]] if host == SECOND[0] else [])
            lab_file.write_text(helpers.poisson_lab(*devices))
            hosts[host] = {
                # Prometheus on pc-a reaches the others by this name too (the network's DNS).
                "ansible_host": pcs.names[host],
                "taggerhub_listen_host": pcs.ips[host],
                "taggerhub_simulator_lab_file": str(lab_file),
            }
        hosts["pc-c"].update(taggerhub_monitoring_labels={"room": "B12"},
                             taggerhub_tagger_aliases=["labmon-c=3333000LMC"])
        inventory = {"taggerhub": {
            "vars": {
                **native_simulator_vars(wheels),
                # Auth and TLS on (the role's defaults): lab CA and lab-wide users.
                "taggerhub_users": [{"name": "admin", "role": "admin"},
                                    {"name": MONITOR, "role": "observer"}],
                "taggerhub_allowed_networks": [subnet],
                "taggerhub_exporter_channels": [1],
                "taggerhub_monitoring_host": "pc-a",
                "taggerhub_monitoring_lab": "labmon",
                "taggerhub_monitoring_scrape_interval": "1s",
                "taggerhub_monitoring_scrape_timeout": "1s",
                "taggerhub_nameserver_host": "pc-a",
                "taggerhub_nameserver_address": pcs.ips["pc-a"],
                "taggerhub_nameserver_port": NS_PORT,
                "taggerhub_tokens_local_dir": str(tmp / "tokens"),
            },
            "hosts": hosts,
        }}
        inventory_file = tmp / "inventory.yml"
        inventory_file.write_text(json.dumps(inventory, indent=2))  # JSON is YAML
        yield {"pcs": pcs, "inventory": inventory_file, "tmp": tmp}
    finally:
        pcs.remove()
        run("docker", "network", "rm", PREFIX, check=False)


def diagnostics(pcs: LabPCs) -> str:
    return pcs.journals("taggerhub*") + pcs.journals("prometheus*")


@pytest.fixture(scope="module")
def converged(lab: dict) -> dict:
    status, out, recap = playbook(lab["inventory"], lab["tmp"], "--forks", "3")
    assert status == 0, out[-6000:] + diagnostics(lab["pcs"])
    lab["first"] = recap
    return lab


class Prometheus:
    """The HTTP API of the Prometheus the role installed on the monitoring host."""

    def __init__(self, ip: str):
        self.url = f"http://{ip}:9090"

    def api(self, path: str, **params: Any) -> Any:
        url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.load(response)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict]:
        try:
            return self.api("query", query=expr)["result"]
        except (urllib.error.URLError, OSError):
            return []  # not up yet

    def by_host(self, expr: str) -> dict[str, dict]:
        return {s["metric"]["host"]: s for s in self.query(expr)}


def lab_access(converged: dict, user: str = MONITOR) -> dict[str, str]:
    """One token and one CA file for the whole lab, as the role left them on the controller."""
    tmp = converged["tmp"]
    return {"token": (tmp / "tokens" / f"{user}.token").read_text().strip(), "tls_ca": str(tmp / "tls-ca" / "ca.pem")}


@pytest.fixture(scope="module")
def prometheus(converged: dict) -> Prometheus:
    return Prometheus(converged["pcs"].ips["pc-a"])


def test_one_run_converges_the_three_lab_pcs(converged: dict) -> None:
    assert set(converged["first"]) == set(LAB)
    for host, counts in converged["first"].items():
        assert counts["failed"] == 0 and counts["unreachable"] == 0 and counts["changed"] > 0, (host, counts)


def test_role_lists_every_lab_pc_in_the_file_sd_targets(converged: dict) -> None:
    pcs = converged["pcs"]
    groups = json.loads(pcs.exec("pc-a", "cat", "/etc/prometheus/file_sd/taggerhub.json").stdout)
    assert groups == [
        {"targets": [f"{pcs.names['pc-a']}:9234"], "labels": {"host": "pc-a", "lab": "labmon"}},
        {"targets": [f"{pcs.names['pc-b']}:9234"], "labels": {"host": "pc-b", "lab": "labmon"}},
        {"targets": [f"{pcs.names['pc-c']}:9234"], "labels": {"host": "pc-c", "lab": "labmon", "room": "B12"}},
    ]
    # Only the monitoring host runs Prometheus.
    for host in ("pc-b", "pc-c"):
        assert pcs.exec(host, "test", "-e", "/etc/prometheus/file_sd", check=False).returncode != 0


def test_every_pc_has_the_one_lab_ca_and_its_own_certificate_and_the_keys_stay_private(converged: dict) -> None:
    pcs, tmp = converged["pcs"], converged["tmp"]
    lab_ca = (tmp / "tls-ca" / "ca.pem").read_text()
    assert oct((tmp / "tls-ca" / "ca-key.pem").stat().st_mode & 0o777) == "0o600"
    assert oct((tmp / "tokens" / f"{MONITOR}.token").stat().st_mode & 0o777) == "0o600"
    server_certs = set()
    for host in LAB:
        assert pcs.exec(host, "cat", "/etc/taggerhub/tls/ca.pem").stdout == lab_ca
        assert pcs.exec(host, "test", "-e", "/etc/taggerhub/tls/ca-key.pem", check=False).returncode != 0
        modes = pcs.exec(host, "stat", "-c", "%n %a %U:%G", "/etc/taggerhub/tls/server-key.pem",
                         "/etc/taggerhub/users.toml").stdout.split("\n")
        assert all(line.endswith(" 640 root:taggerhub") for line in modes if line), modes
        server_certs.add(pcs.exec(host, "cat", "/etc/taggerhub/tls/server.pem").stdout)
    assert len(server_certs) == len(LAB)  # each PC its own certificate


def test_firewall_guards_prometheus_and_the_name_server_on_their_host_only(converged: dict) -> None:
    pcs = converged["pcs"]
    for host, ports in (("pc-a", {23000, 9234, 9090, NS_PORT}), ("pc-b", {23000, 9234})):
        table = pcs.exec(host, "nft", "list", "table", "inet", "taggerhub").stdout
        found = re.search(r"tcp dport \{ ([0-9, ]+) \} jump taggerhub_ports", table)
        assert found and {int(p) for p in found.group(1).split(",")} == ports, (host, table)


def test_prometheus_scrapes_every_pc_and_its_per_host_rates_match_the_simulated_sources(
        prometheus: Prometheus) -> None:
    up = wait_until(lambda: len(found := prometheus.by_host('up{job="taggerhub"} == 1')) == 3 and found, 90,
                    "Prometheus to scrape all three exporters")
    assert {s["metric"]["lab"] for s in up.values()} == {"labmon"}
    assert up["pc-c"]["metric"]["room"] == "B12"
    # At least ten one-second windows of each PC's channel 1 (a scrape may time out on a busy machine).
    window = 'count_over_time(taggerhub_channel_count_rate_hertz{channel="1"}[20s]) >= 10'
    wait_until(lambda: len(prometheus.by_host(window)) == 3, 90, "ten count-rate samples from every PC")
    rates = prometheus.by_host('avg_over_time(taggerhub_channel_count_rate_hertz{channel="1"}[20s])')
    assert set(rates) == set(LAB)  # one series per PC: pc-c's second tagger is not open yet
    for host, (serial, rate) in LAB.items():
        assert rates[host]["metric"]["serial"] == serial
        assert float(rates[host]["value"][1]) == pytest.approx(rate, rel=0.03), host
    assert {h: s["value"][1] for h, s in prometheus.by_host("taggerhub_up").items()} == dict.fromkeys(LAB, "1")


def test_shipped_alert_rules_are_loaded_and_healthy(prometheus: Prometheus) -> None:
    def rules() -> dict[str, dict] | None:
        found = {r["name"]: r for g in prometheus.api("rules")["groups"] for r in g["rules"]}
        return found if found and all(r["health"] != "unknown" for r in found.values()) else None

    found = wait_until(rules, 30, "the rules to be evaluated")
    shipped = yaml.safe_load((helpers.REPO / "monitoring" / "prometheus" / "rules" / "taggerhub.rules.yml").read_text())
    assert set(found) == {r["alert"] for g in shipped["groups"] for r in g["rules"]}  # every shipped rule, no other
    assert {"TaggerhubServerDown", "TaggerhubTaggerOverflows", "TaggerhubStreamTagsLost"} <= set(found)
    for name, rule in found.items():
        assert rule["health"] == "ok", (name, rule.get("lastError"))
    # Nothing fires in a healthy lab (a scrape timing out on a busy machine may make one pending).
    assert [a for a in prometheus.api("alerts")["alerts"] if a["state"] == "firing"] == []


def test_taggerhub_ls_lists_every_tagger_of_the_lab_through_its_name_server(converged: dict) -> None:
    from taggerhub.client.proxy import createProxy

    ns = f"{converged['pcs'].ips['pc-a']}:{NS_PORT}"

    access = lab_access(converged)

    def listing() -> list[dict]:
        # ONE token and ONE CA file for every PC of the lab.
        result = run(str(VENV_BIN / "taggerhub"), "ls", "--ns", ns, "--json", "--token", access["token"],
                     "--tls-ca", access["tls_ca"], check=False, timeout=60)
        rows = json.loads(result.stdout) if result.returncode == 0 else []
        wanted = {f"taggerhub.{h}.{s}" for h, (s, _) in LAB.items()} | {"taggerhub.{}.{}".format(*SECOND[:2])}
        return rows if {r["name"] for r in rows} >= wanted else []

    rows = {r["name"]: r for r in wait_until(listing, 30, "every tagger of the lab in `taggerhub ls`")}
    for host, (serial, _) in LAB.items():
        row = rows[f"taggerhub.{host}.{serial}"]
        assert (row["host"], row["serial"], row["model"]) == (host, serial, "Time Tagger Ultra")
        assert row["status"] == "open"  # the PC's exporter has it open
        assert row["uri"].endswith(f"@{converged['pcs'].ips[host]}:23000")
    assert rows["taggerhub.pc-c.3333000LMC"]["aliases"] == ["labmon-c"]
    assert rows["taggerhub.pc-c.3333000LMD"]["status"] == "free"  # served, nobody opened it
    # A client reaches a tagger on each PC by name (pc-c's by its alias), over TLS, with the same token.
    for name, serial in [(f"taggerhub.{h}.{s}", s) for h, (s, _) in LAB.items() if h != "pc-c"] + [
            ("labmon-c", "3333000LMC")]:
        TT = createProxy(name=name, ns_host=converged["pcs"].ips["pc-a"], ns_port=NS_PORT, **access)
        try:
            assert TT.createTimeTagger().getSerial() == serial
        finally:
            TT._pyroRelease()
    # Without the token, or trusting another CA, a PC refuses.
    other_ca = converged["tmp"] / "other-ca"
    run(str(VENV_BIN / "taggerhub"), "certs", "init", str(other_ca), "--host", "localhost")
    for kwargs in ({"tls_ca": access["tls_ca"]}, {"token": access["token"], "tls_ca": str(other_ca / "ca.pem")}):
        with pytest.raises(Exception, match=r"(?i)refused|token|certificate|verif|closed|connect"):
            TT = createProxy(name="labmon-c", ns_host=converged["pcs"].ips["pc-a"], ns_port=NS_PORT, **kwargs)
            try:
                TT.createTimeTagger()
            finally:
                TT._pyroRelease()


def test_a_tagger_opened_later_is_monitored_under_its_own_serial(converged: dict, prometheus: Prometheus) -> None:
    from taggerhub.client.proxy import createProxy

    host, serial, rate = SECOND
    TT = createProxy(name=f"taggerhub.{host}.{serial}", ns_host=converged["pcs"].ips["pc-a"], ns_port=NS_PORT,
                     **lab_access(converged, "admin"))
    try:
        assert TT.createTimeTagger().getSerial() == serial  # a user opens pc-c's second tagger
        window = f'count_over_time(taggerhub_channel_count_rate_hertz{{host="{host}", channel="1"}}[8s]) >= 5'
        wait_until(lambda: len(prometheus.query(window)) == 2, 60, "count rates of both of pc-c's taggers")
        found = {s["metric"]["serial"]: float(s["value"][1]) for s in prometheus.query(
            f'avg_over_time(taggerhub_channel_count_rate_hertz{{host="{host}", channel="1"}}[8s])')}
        assert found == {LAB[host][0]: pytest.approx(LAB[host][1], rel=0.05), serial: pytest.approx(rate, rel=0.05)}
        up = {s["metric"]["serial"]: s["value"][1] for s in prometheus.query(f'taggerhub_tagger_up{{host="{host}"}}')}
        assert up == {LAB[host][0]: "1", serial: "1"}
    finally:
        TT._pyroRelease()


def test_second_run_applies_only_a_token_rotated_on_the_controller(converged: dict) -> None:
    """Rotate the monitoring user's token on the controller: the next run sets it on every PC, nothing else."""
    from taggerhub.lab.listing import listing

    pcs, ns_host = converged["pcs"], converged["pcs"].ips["pc-a"]
    old = lab_access(converged)
    (converged["tmp"] / "tokens" / f"{MONITOR}.token").unlink()  # the role makes a new one
    before = {h: pcs.exec(h, "systemctl", "show", "--property=MainPID", "taggerhub-native.service").stdout for h in LAB}
    prometheus_pid = pcs.exec("pc-a", "systemctl", "show", "--property=MainPID", "prometheus.service").stdout
    status, out, recap = playbook(converged["inventory"], converged["tmp"], "--forks", "3")
    assert status == 0, out[-6000:]
    changed = changed_tasks(out)
    tasks = {line.split("]")[0] for line in changed.splitlines() if line.startswith("TASK [")}
    assert tasks == {"TASK [taggerhub : Make each user's lab-wide token on the controller once.",
                     "TASK [taggerhub : Give each user its role and lab-wide token on this PC."}, changed
    for host, counts in recap.items():
        assert counts["changed"] == (2 if host == "pc-a" else 1), f"{host}:\n" + changed  # run_once: on pc-a
    assert before == {h: pcs.exec(h, "systemctl", "show", "--property=MainPID", "taggerhub-native.service").stdout
                      for h in LAB}, "the second run restarted a server"
    assert pcs.exec("pc-a", "systemctl", "show", "--property=MainPID", "prometheus.service").stdout == prometheus_pid
    new = lab_access(converged)
    assert new["token"] != old["token"]
    # Every PC takes the new token (the server re-reads users.toml by itself) and refuses the old one.
    def statuses(access: dict[str, str]) -> list[str]:
        return [r.status for r in listing(ns_host, NS_PORT, **access)]

    wait_until(lambda: len(found := statuses(new)) == 4 and set(found) <= {"open", "free"}, 30,
               "every PC to take the rotated token")
    assert statuses(old) == ["refused"] * 4


def test_alert_for_a_stopped_server_names_the_lab_pc(converged: dict, prometheus: Prometheus) -> None:
    pcs = converged["pcs"]
    pcs.exec("pc-b", "systemctl", "stop", "taggerhub-native.service")
    try:
        def pending() -> list[dict]:
            return [a for a in prometheus.api("alerts")["alerts"] if a["labels"]["alertname"] == "TaggerhubServerDown"]

        (alert,) = wait_until(pending, 30, "the server-down alert for pc-b")
        assert alert["state"] == "pending"  # it fires after a minute; the wording is what matters here
        assert (alert["labels"]["host"], alert["labels"]["lab"]) == ("pc-b", "labmon")
        assert alert["annotations"]["summary"] == "taggerhub server on pc-b is not answering"
        assert f"({pcs.names['pc-b']}:9234)" in alert["annotations"]["description"]
    finally:
        pcs.exec("pc-b", "systemctl", "start", "taggerhub-native.service")


def test_a_revoked_user_is_removed_from_every_pc_and_its_token_from_the_controller(converged: dict) -> None:
    """`state: absent` revokes a lab-wide user everywhere; exclusive mode also drops users made by hand on a PC."""
    from taggerhub.lab.listing import listing

    pcs, tmp, ns_host = converged["pcs"], converged["tmp"], converged["pcs"].ips["pc-a"]
    revoked, admin = lab_access(converged), lab_access(converged, "admin")
    cli = ["env", "TAGGERHUB_CONFIG=/etc/taggerhub/taggerhub.toml", "/opt/taggerhub/venv/bin/taggerhub", "user"]
    pcs.exec("pc-b", *cli, "add", "by-hand", "--role", "admin")  # an admin made on one PC, outside the inventory

    def users_on(host: str) -> set[str]:
        return {u["name"] for u in json.loads(pcs.exec(host, *cli, "list", "--json").stdout)}

    assert users_on("pc-b") == {"admin", MONITOR, "taggerhub-exporter", "by-hand"}
    from taggerhub.client.proxy import createProxy

    host, (serial, _) = "pc-b", LAB["pc-b"]

    def resolved() -> Any:
        try:
            return createProxy(name=f"taggerhub.{host}.{serial}", ns_host=ns_host, ns_port=NS_PORT, **revoked)
        except LookupError:  # pc-b's server may have restarted just before and not be registered again yet
            return None

    TT = wait_until(resolved, timeout_s=60, what=f"{host}'s tagger registered in the name server")
    tagger = TT.createTimeTagger()  # a connection that stays open across the revocation
    assert tagger.getSerial() == serial
    extra = json.dumps({"taggerhub_users": [{"name": "admin", "role": "admin"}, {"name": MONITOR, "state": "absent"}],
                        "taggerhub_users_exclusive": True})
    status, out, recap = playbook(converged["inventory"], tmp, "--forks", "3", "-e", extra)
    assert status == 0, out[-6000:]
    tasks = {line.split("]")[0] for line in changed_tasks(out).splitlines() if line.startswith("TASK [")}
    assert tasks == {"TASK [taggerhub : Remove the users the lab has revoked from this PC.",
                     "TASK [taggerhub : Delete revoked users' tokens on the controller."}, changed_tasks(out)
    for host in LAB:
        assert users_on(host) == {"admin", "taggerhub-exporter"}, host  # the exporter keeps its own user
    assert not (tmp / "tokens" / f"{MONITOR}.token").exists()

    def statuses(access: dict[str, str]) -> list[str]:
        return [r.status for r in listing(ns_host, NS_PORT, **access)]

    wait_until(lambda: statuses(revoked) == ["refused"] * 4, 30, "every PC to refuse the revoked token")
    assert set(statuses(admin)) <= {"open", "free"}
    try:
        with pytest.raises(Exception, match=f"user '{MONITOR}' has been removed"):
            tagger.getSerial()
    finally:
        TT._pyroRelease()
    # Revoking again finds nothing left to do.
    status, out, recap = playbook(converged["inventory"], tmp, "--forks", "3", "-e", extra)
    assert status == 0 and all(counts["changed"] == 0 for counts in recap.values()), changed_tasks(out)
