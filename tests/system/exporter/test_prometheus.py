"""The exporter under a real Prometheus: rates, sessions, every dashboard panel, rules, server restarts.

One module-wide stack: two simulator servers (two "lab PCs"), an exporter for
each, and a Prometheus scraping both every second, queried over its HTTP API.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from helpers import REPO, free_port, poisson_lab, stop_process, wait_for_port, wait_until
from taggerhub import client
from taggerhub.lab.exporter.scrapers import new_scraper

pytestmark = [pytest.mark.slow, pytest.mark.needs("prometheus")]

MONITORING = REPO / "monitoring"
TEST_SIGNAL_HZ = 800e3  # Time Tagger Ultra test signal: 403.2 MHz / 504
POISSON_HZ = 200e3  # high enough that Poisson noise in a 0.5 s window is 0.3 %


class Proc:
    """A subprocess with its output in a file, stopped with SIGTERM (then SIGKILL)."""

    def __init__(self, cmd: list[str], log_path: Path, port: int, env: dict[str, str] | None = None):
        self.log_path = log_path
        self.port = port
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
        wait_for_port(port, proc=self.proc)

    def stop(self) -> None:
        stop_process(self.proc)
        self._log.close()


def start_server(tmp: Path, port: int, lab: Path) -> Proc:
    return Proc([sys.executable, "-m", "taggerhub", "serve", "--port", str(port), "--sim-config", str(lab)],
                tmp / f"server-{port}.log", port)


def start_exporter(tmp: Path, server_port: int, channels: str, scraper_entry: str) -> Proc:
    port = free_port()
    # A generous call timeout: a busy CI machine must not pass for a dead server. Prometheus is the
    # one scraper, allowed to see user names (as the Ansible role sets it up).
    return Proc([sys.executable, "-m", "taggerhub", "exporter", "--listen", f"127.0.0.1:{port}",
                 "--server", f"127.0.0.1:{server_port}", "--channels", channels],
                tmp / f"exporter-{port}.log", port,
                env={"TAGGERHUB_EXPORTER_TIMEOUT_S": "5", "TAGGERHUB_EXPORTER_SCRAPERS": scraper_entry,
                     "TAGGERHUB_EXPORTER_SHOW_USERS_TO": "prometheus"})


def prometheus_config(tmp: Path, targets: dict[str, str]) -> Path:
    """The shipped config with a 1 s scrape interval and our exporters as the lab's targets.

    ``targets`` maps address to lab PC name (the `host` label); "" lists the address
    without one, as a hand-written list might.
    """
    config = yaml.safe_load((MONITORING / "prometheus" / "prometheus.yml").read_text())
    config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    config["rule_files"] = [str(MONITORING / "prometheus" / f) for f in config["rule_files"]]
    (tmp / "targets").mkdir(exist_ok=True)
    groups = [{"targets": [address], "labels": {"lab": "test", **({"host": host} if host else {})}}
              for address, host in targets.items()]
    (tmp / "targets" / "test.yml").write_text(yaml.safe_dump(groups))
    (job,) = config["scrape_configs"]
    job["file_sd_configs"] = [{"files": [str(tmp / "targets" / "*.yml")]}]
    path = tmp / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


@dataclass
class Stack:
    tmp: Path
    prometheus_url: str
    servers: dict[str, Proc] = field(default_factory=dict)
    exporters: dict[str, Proc] = field(default_factory=dict)
    labs: dict[str, Path] = field(default_factory=dict)
    keep: list[Any] = field(default_factory=list)
    dead_target: str = ""  # a lab PC whose exporter does not run

    def instance(self, name: str) -> str:
        return f"127.0.0.1:{self.exporters[name].port}"

    def api(self, path: str, **params: Any) -> Any:
        url = f"{self.prometheus_url}/api/v1/{path}?{urllib.parse.urlencode(params, doseq=True)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                body = json.load(response)
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"Prometheus refused {params}: {exc.read().decode()}") from None
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict]:
        return self.api("query", query=expr)["result"]

    def alerts(self, name: str) -> dict[str, str]:
        """State of alert ``name`` by instance (pending or firing)."""
        return {a["labels"]["instance"]: a["state"] for a in self.api("alerts")["alerts"]
                if a["labels"]["alertname"] == name}

    def scalar(self, expr: str) -> float | None:
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("prometheus-stack")
    prom_port = free_port()
    stack = Stack(tmp, f"http://127.0.0.1:{prom_port}")
    procs: list[Proc] = []
    try:
        for name, serial in (("a", "2138000EXA"), ("b", "2138000EXB")):
            stack.labs[name] = tmp / f"lab-{name}.toml"
            stack.labs[name].write_text(poisson_lab((serial, POISSON_HZ), channel=2))
            stack.servers[name] = start_server(tmp, free_port(), stack.labs[name])
            procs.append(stack.servers[name])
        # A user on lab PC "a" switches on the test signal, as a lab would for a cable check.
        TT = client.createProxy(port=stack.servers["a"].port)
        tagger = TT.createTimeTagger()
        tagger.setTestSignal(1, True)
        with pytest.raises(ValueError):
            tagger.setTestSignal(99, True)  # a failing call, for the RPC errors panel
        stack.keep += [TT, tagger]
        # The shipped config reads the scraper credential from taggerhub-scraper.token beside it.
        token, entry = new_scraper("prometheus")
        (tmp / "taggerhub-scraper.token").write_text(token + "\n")
        stack.exporters["a"] = start_exporter(tmp, stack.servers["a"].port, "1,2,3", entry)
        stack.exporters["b"] = start_exporter(tmp, stack.servers["b"].port, "1,2", entry)
        procs += stack.exporters.values()
        stack.dead_target = f"127.0.0.1:{free_port()}"
        config = prometheus_config(tmp, {stack.instance("a"): "pc-a", stack.instance("b"): "pc-b",
                                         stack.dead_target: ""})
        prometheus = Proc(["prometheus", f"--config.file={config}", f"--storage.tsdb.path={tmp / 'data'}",
                           f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn"],
                          tmp / "prometheus.log", prom_port)
        procs.append(prometheus)
        wait_until(lambda: _ready(stack.prometheus_url), 30, "Prometheus to be ready")
        wait_until(lambda: len(stack.query('taggerhub_channel_count_rate_hertz{channel="1"}')) == 2
                   and stack.query("count_over_time(taggerhub_up[10s]) >= 3"), 30,
                   "Prometheus to hold a few scrapes of both exporters")
        yield stack
    finally:
        # Servers a test restarted are in stack.servers, not in procs: stop them too.
        for proc in [*reversed(procs), *(p for p in stack.servers.values() if p not in procs)]:
            proc.stop()
        for proxy in stack.keep:
            proxy._pyroRelease()


def test_channel_rates_match_the_simulated_signals(stack: Stack) -> None:
    inst = stack.instance("a")
    time.sleep(3)  # a few more one-second windows
    for channel, expected in (("1", TEST_SIGNAL_HZ), ("2", POISSON_HZ)):
        samples = stack.query(f'taggerhub_channel_count_rate_hertz{{instance="{inst}", channel="{channel}"}}[8s]')
        (series,) = samples
        assert series["metric"]["serial"] == "2138000EXA"
        values = [float(v) for _, v in series["values"]]
        assert len(values) >= 3
        for value in values:
            assert value == pytest.approx(expected, rel=0.02), (channel, values)
    # Channel 3 has no signal; unwatched channels are not exported at all.
    assert stack.scalar(f'taggerhub_channel_count_rate_hertz{{instance="{inst}", channel="3"}}') == 0
    assert stack.query(f'taggerhub_channel_count_rate_hertz{{instance="{inst}", channel="4"}}') == []
    assert stack.scalar(f'taggerhub_up{{instance="{inst}"}}') == 1
    info = stack.query(f'taggerhub_tagger_info{{instance="{inst}"}}')[0]["metric"]
    assert info["model"] == "Time Tagger Ultra" and info["backend"] == "simulator"


def test_rate_follows_the_signal_off_and_on_again(stack: Stack) -> None:
    """Rates are per scrape window, not a running average: switching the signal off shows 0 at once."""
    inst = stack.instance("a")
    rate = f'taggerhub_channel_count_rate_hertz{{instance="{inst}", channel="1"}}'
    tagger = stack.keep[1]
    tagger.setTestSignal(1, False)
    try:
        wait_until(lambda: stack.scalar(rate) == 0, 10, "channel 1 to read 0 Hz")
    finally:
        tagger.setTestSignal(1, True)
    wait_until(lambda: stack.scalar(f"{rate} > 0.98 * {TEST_SIGNAL_HZ}"), 10, "channel 1 back at 800 kHz")


def test_session_count_follows_connected_clients(stack: Stack) -> None:
    inst = stack.instance("a")
    sessions = f'sum(taggerhub_client_sessions{{instance="{inst}"}})'
    before = wait_until(lambda: stack.scalar(sessions), 10, "a session count")
    assert before == 2  # this test process and the exporter
    script = ("import sys; from taggerhub import client; "
              f"TT = client.createProxy(port={stack.servers['a'].port}); TT.hub_status(); "
              "print('ready', flush=True); sys.stdin.read()")
    clients = [subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
               for _ in range(3)]
    try:
        for c in clients:
            assert c.stdout is not None and c.stdout.readline().strip() == b"ready"
        wait_until(lambda: stack.scalar(sessions) == before + 3, 15, "three more sessions")
        by_role = stack.query(f'taggerhub_client_sessions{{instance="{inst}"}}')
        assert {(s["metric"]["user"], s["metric"]["role"]) for s in by_role} == {("anonymous", "admin")}
        with pytest.raises(urllib.error.HTTPError, match="401"):  # Prometheus got in with its credential
            urllib.request.urlopen(f"http://{inst}/metrics", timeout=10)
    finally:
        for c in clients:
            c.communicate(timeout=10)  # closing stdin ends the client
    wait_until(lambda: stack.scalar(sessions) == before, 15, "the sessions to end")


def _label_values(stack: Stack, definition: str) -> list[str]:
    match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", definition.strip())
    assert match, f"unsupported variable query {definition!r}"
    selector, label = match.groups()
    series = stack.api("series", **{"match[]": selector, "start": time.time() - 60})
    return sorted({s[label] for s in series if label in s})


def test_every_dashboard_panel_returns_data(stack: Stack) -> None:
    dashboards = sorted((MONITORING / "grafana" / "dashboards").glob("*.json"))
    assert dashboards
    for path in dashboards:
        dashboard = json.loads(path.read_text())
        chosen = {"__rate_interval": "5s", "__interval": "1s", "__range": "30s"}
        for var in dashboard["templating"]["list"]:
            if var["type"] != "query":
                continue
            query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
            for name, value in chosen.items():
                query = query.replace(f"${name}", value)
            values = _label_values(stack, query)
            assert values, f"{path.name}: variable {var['name']} has no values"
            assert var["name"] != "host" or {"pc-a", "pc-b"} <= set(values), values  # the whole lab
            wanted = {"host": "pc-a", "serial": "2138000EXA"}.get(var["name"], values[0])
            assert wanted in values, (var["name"], values)
            chosen[var["name"]] = re.escape(wanted).replace("\\", "\\\\")  # as Grafana quotes a regex
        panels = [p for p in dashboard["panels"] if p["type"] != "row"]
        assert len(panels) >= 10
        now = time.time()
        for panel in panels:
            assert panel["targets"], f"{path.name}: panel {panel['title']!r} has no query"
            for target in panel["targets"]:
                expr = target["expr"]
                for name in sorted(chosen, key=len, reverse=True):
                    expr = expr.replace(f"${name}", chosen[name])
                assert "$" not in expr.replace("$labels", ""), f"unsubstituted variable in {expr}"
                result = stack.api("query_range", query=expr, start=now - 20, end=now, step=1)["result"]
                assert result, f"{path.name}: panel {panel['title']!r} would stay empty: {expr}"


def test_alert_rules_evaluate_on_live_data(stack: Stack) -> None:
    def rules() -> dict[str, dict]:
        return {r["name"]: r for g in stack.api("rules")["groups"] for r in g["rules"]}

    assert set(rules()) >= {"TaggerhubExporterDown", "TaggerhubServerDown", "TaggerhubTaggerDown",
                            "TaggerhubChannelRateZero",
                            "TaggerhubRefusedHandshakesSpike", "TaggerhubTaggerOverflows",
                            "TaggerhubStreamTagsLost"}
    def evaluated() -> dict[str, dict] | None:
        current = rules()
        return current if all(r["health"] != "unknown" for r in current.values()) else None

    for name, rule in wait_until(evaluated, 10, "every rule to be evaluated").items():
        assert rule["health"] == "ok", (name, rule.get("lastError"))
    # The lab PC without a running exporter, and only it, raises the exporter-down alert.
    down = wait_until(lambda: stack.alerts("TaggerhubExporterDown"), 10, "the exporter-down alert")
    assert down == {stack.dead_target: "pending"}
    # Listed without a `host` label, the PC is named by its address (the shipped relabelling).
    (alert,) = [a for a in stack.api("alerts")["alerts"] if a["labels"]["alertname"] == "TaggerhubExporterDown"]
    assert alert["labels"]["host"] == "127.0.0.1"
    assert alert["annotations"]["summary"] == f"taggerhub exporter on 127.0.0.1 ({stack.dead_target}) is not reachable"
    assert stack.alerts("TaggerhubChannelRateZero") == {}
    assert stack.alerts("TaggerhubTaggerOverflows") == {}
    assert stack.alerts("TaggerhubStreamTagsLost") == {}  # no subscriber there: nothing lost


@pytest.mark.parametrize("args", [
    ["check", "config", "prometheus.yml"],
    ["check", "rules", "rules/taggerhub.rules.yml"],
    ["test", "rules", "tests/taggerhub.rules.test.yml"],
])
def test_promtool_accepts_the_shipped_files(args: list[str], tmp_path: Path) -> None:
    # As docs/monitoring.md says: copy the folder and put the scraper's credential beside the config.
    shutil.copytree(MONITORING / "prometheus", tmp_path / "prometheus")
    (tmp_path / "prometheus" / "taggerhub-scraper.token").write_text("prometheus.secret\n")
    result = subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=60,
                            cwd=tmp_path / "prometheus")
    assert result.returncode == 0, result.stdout + result.stderr


def test_grafana_provisioning_points_at_the_dashboards() -> None:
    providers = yaml.safe_load((MONITORING / "grafana" / "provisioning" / "dashboards" / "taggerhub.yml").read_text())
    assert providers["apiVersion"] == 1 and providers["providers"][0]["type"] == "file"
    sources = yaml.safe_load((MONITORING / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text())
    assert sources["datasources"][0]["type"] == "prometheus"
    for path in (MONITORING / "grafana" / "dashboards").glob("*.json"):
        dashboard = json.loads(path.read_text())
        names = [v["name"] for v in dashboard["templating"]["list"]]
        assert {"host", "serial"} <= set(names), f"{path.name} lacks the lab PC / tagger variables"
        ids = [p["id"] for p in dashboard["panels"]]
        assert len(ids) == len(set(ids)), f"{path.name}: duplicate panel ids"


def test_server_restart_takes_up_to_zero_and_back_without_restarting_the_exporter(stack: Stack) -> None:
    inst = stack.instance("b")
    exporter = stack.exporters["b"].proc
    up = f'taggerhub_up{{instance="{inst}"}}'
    wait_until(lambda: stack.scalar(up) == 1, 10, "taggerhub_up 1 before the restart")
    connects = stack.scalar(f'taggerhub_exporter_connects_total{{instance="{inst}"}}')
    port = stack.servers["b"].port
    stack.servers["b"].stop()
    wait_until(lambda: stack.scalar(up) == 0, 20, "taggerhub_up 0 after the server stopped")
    wait_until(lambda: inst in stack.alerts("TaggerhubServerDown"), 10, "the server-down alert to be pending")
    # One alert for the server, naming the PC; not one more for its tagger.
    assert stack.alerts("TaggerhubTaggerDown") == {}
    (alert,) = [a for a in stack.api("alerts")["alerts"] if a["labels"]["alertname"] == "TaggerhubServerDown"]
    assert alert["annotations"]["summary"] == "taggerhub server on pc-b is not answering"
    assert stack.scalar(f'taggerhub_tagger_up{{instance="{inst}", serial="2138000EXB"}}') == 0
    # The exporter itself stays scrapeable meanwhile, and reports the tagger down too.
    assert stack.scalar(f'max_over_time(up{{instance="{inst}"}}[5s])') == 1
    assert stack.scalar(f'taggerhub_server_up{{instance="{inst}"}}') == 0
    stack.servers["b"] = start_server(stack.tmp, port, stack.labs["b"])
    wait_until(lambda: stack.scalar(up) == 1, 20, "taggerhub_up 1 after the server came back")
    wait_until(lambda: inst not in stack.alerts("TaggerhubServerDown"), 10, "the server-down alert to clear")
    wait_until(lambda: stack.query(f'taggerhub_channel_count_rate_hertz{{instance="{inst}", channel="2"}} > 0'),
               10, "count rates from the recreated Countrate")
    assert exporter.poll() is None and stack.exporters["b"].proc is exporter
    # It reconnected by itself (more than once only if a call timed out under heavy load).
    assert stack.scalar(f'taggerhub_exporter_connects_total{{instance="{inst}"}}') >= connects + 1
