"""compose.yaml on a real Docker engine: up, healthy, served to the host, watched, self-healing."""

from __future__ import annotations

import json
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families
from TimeTaggerRPC import client as vendor_client

from taggerhub import client
from taggerhub.errors import ObjectGone, ServerUnavailable

from .containers import docker, wait_until

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def scrape(port: int) -> dict[str, list]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    samples: dict[str, list] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(sample)
    return samples


def count_rates(port: int) -> list[float]:
    TT = client.createProxy(host="127.0.0.1", port=port)
    tagger = TT.createTimeTagger()
    tagger.setTestSignal(1, True)
    rate = TT.Countrate(tagger, [1, 2])
    rate.startFor(int(0.2e12))
    rate.waitUntilFinished()
    return list(rate.getData())


def test_compose_up_without_settings_serves_the_simulator_to_a_host_client(taggerhub_service):
    assert taggerhub_service.health() == "healthy"
    rates = count_rates(taggerhub_service.rpc_port)
    # Channel 1 sees the internal test signal (~800 kHz on the simulated Ultra).
    assert rates[0] == pytest.approx(800e3, rel=0.05)


def test_vendor_client_on_the_host_reaches_objects_at_the_published_address(taggerhub_service):
    # The vendor's client uses object URIs as the server writes them: compose advertises the
    # published address, not the 0.0.0.0 the server listens on inside the container.
    TT = vendor_client.createProxy(host="127.0.0.1", port=taggerhub_service.rpc_port)
    tagger = TT.createTimeTagger()
    assert tagger._pyroUri.location == f"127.0.0.1:{taggerhub_service.rpc_port}"
    tagger.setTestSignal(2, True)
    rate = TT.Countrate(tagger, [2])
    rate.startFor(int(0.1e12))
    rate.waitUntilFinished()
    assert rate.getData()[0] == pytest.approx(800e3, rel=0.05)


def test_ports_are_published_on_loopback_only(taggerhub_service):
    ports = json.loads(docker("inspect", "--format", "{{json .NetworkSettings.Ports}}",
                              taggerhub_service.container_id()).stdout)
    published = [binding["HostIp"] for bindings in ports.values() if bindings for binding in bindings]
    assert published and set(published) == {"127.0.0.1"}


def test_metrics_endpoint_reports_the_server_and_tagger_up(taggerhub_service):
    samples = wait_until(lambda: (s := scrape(taggerhub_service.metrics_port))["taggerhub_up"][0].value == 1 and s,
                         timeout_s=30, what="taggerhub_up 1")
    assert samples["taggerhub_server_up"][0].value == 1
    info = samples["taggerhub_tagger_info"][0].labels
    assert info["backend"] == "simulator"


def test_container_runs_as_non_root_with_the_usb_group(taggerhub_service):
    assert docker("inspect", "--format", "{{.Config.User}}", taggerhub_service.container_id()).stdout.strip() == "10001"
    assert taggerhub_service.exec("id", "-u").stdout.strip() == "10001"
    assert "plugdev" in taggerhub_service.exec("id", "-Gn").stdout.split()
    # Every process in the container, supervisord (PID 1) included.
    top = docker("top", taggerhub_service.container_id(), "-eo", "uid,pid,args").stdout.splitlines()[1:]
    assert any("supervisord" in line for line in top) and any("taggerhub serve" in line for line in top)
    assert {line.split()[0] for line in top} == {"10001"}


def test_server_and_exporter_log_json_lines_to_the_container_stdout(taggerhub_service):
    events = []
    for line in taggerhub_service.compose("logs", "--no-log-prefix", "--no-color", "taggerhub").stdout.splitlines():
        if "{" in line:  # supervisord's own lines are plain text
            event = json.loads(line[line.index("{"):])
            events.append((event["logger"], event["event"]))
    assert ("taggerhub.server", "serving") in events
    assert ("taggerhub.exporter", "serving metrics") in events


def test_killed_server_is_restarted_by_supervisor_and_the_client_reconnects(taggerhub_service):
    TT = client.createProxy(host="127.0.0.1", port=taggerhub_service.rpc_port)
    tagger = TT.createTimeTagger()
    serial = tagger.getSerial()
    old_pid = taggerhub_service.exec("supervisorctl", "pid", "server").stdout.strip()
    assert old_pid.isdigit()

    taggerhub_service.exec("sh", "-c", f"kill -KILL {old_pid}")

    def restarted() -> bool:
        pid = taggerhub_service.exec("supervisorctl", "pid", "server", check=False).stdout.strip()
        return pid.isdigit() and pid not in (old_pid, "0")

    wait_until(restarted, timeout_s=30, what="a new server process")
    # The same library proxy reconnects by itself once the new server listens.
    status = wait_until(lambda: TT.hub_status(), timeout_s=30, what="the client reconnecting")
    assert status["backend"] == "simulator"
    # Objects of the killed server are gone, and the client says so by type.
    with pytest.raises((ObjectGone, ServerUnavailable)):
        tagger.getSerial()
    assert TT.createTimeTagger().getSerial() == serial
    assert count_rates(taggerhub_service.rpc_port)[0] == pytest.approx(800e3, rel=0.05)
    log = taggerhub_service.compose("logs", "--no-log-prefix", "taggerhub").stdout
    assert "exited: server (terminated by SIGKILL; not expected)" in log
    wait_until(lambda: taggerhub_service.health() == "healthy", timeout_s=30, what="healthy again")
