"""The collector on its own: parsing options, metric families, short scrapes when the server is gone."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import urllib.request

import Pyro5.client
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from helpers import free_port, poisson_lab, wait_for_port
from taggerhub import client
from taggerhub.config import ExporterSettings
from taggerhub.lab.exporter import Reading, TaggerhubCollector, build_registry, families, parse_address, parse_channels
from taggerhub.server.stats import DURATION_BUCKETS_S, RpcStats


def samples(registry) -> dict[tuple[str, tuple], float]:
    """Scrape a registry in the text format and parse it back, as Prometheus would."""
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text) for s in family.samples
    }


def value(found: dict, name: str, **labels: str) -> float | None:
    return found.get((name, tuple(sorted(labels.items()))))


def test_parse_address_accepts_host_port_and_names_the_option_on_error() -> None:
    assert parse_address("127.0.0.1:9234", "x") == ("127.0.0.1", 9234)
    assert parse_address("[::1]:9234", "x") == ("::1", 9234)
    assert parse_address(":9234", "x", default_host="0.0.0.0") == ("0.0.0.0", 9234)
    with pytest.raises(ValueError, match=r"exporter\.server must be HOST:PORT, got 'localhost:http'"):
        parse_address("localhost:http", "exporter.server")
    with pytest.raises(ValueError, match=r"port must be 0\.\.65535"):
        parse_address("localhost:70000", "exporter.listen")


def test_parse_channels_names_the_bad_item() -> None:
    assert parse_channels("1, 2,-3,") == [1, 2, -3]
    with pytest.raises(ValueError, match="'two'"):
        parse_channels("1,two")


def test_cli_rejects_a_bad_listen_address_with_a_clear_error() -> None:
    result = subprocess.run([sys.executable, "-m", "taggerhub", "exporter", "--listen", "0.0.0.0:notaport"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "exporter.listen must be HOST:PORT, got '0.0.0.0:notaport'" in result.stderr


def test_rpc_histogram_is_cumulative_with_count_and_sum() -> None:
    stats = RpcStats()
    for duration in (0.00005, 0.0003, 0.0003, 0.02, 7.0):
        stats.record_call("Countrate.getData", "ok", duration)
    stats.record_call("Countrate.getData", "error", 0.001)
    stats.record_refused("bad_token")
    metrics = {"status": {"devices": [], "backend": "simulator", "backend_version": "2", "version": "0"},
               "rpc": stats.snapshot(), "sessions": [["alice", "user", 2]], "objects": {"Countrate": 3}}

    class Fixed:
        def collect(self):
            return families(Reading(metrics=metrics))

    found = samples(build_registry(Fixed()))  # type: ignore[arg-type]
    bucket = "taggerhub_rpc_duration_seconds_bucket"
    method = "Countrate.getData"
    assert value(found, bucket, method=method, le="0.0001") == 1
    assert value(found, bucket, method=method, le="0.0005") == 3
    assert value(found, bucket, method=method, le="0.001") == 4  # the error call took 1 ms
    assert value(found, bucket, method=method, le=str(float(DURATION_BUCKETS_S[-1]))) == 5
    assert value(found, bucket, method=method, le="+Inf") == 6
    assert value(found, "taggerhub_rpc_duration_seconds_count", method=method) == 6
    assert value(found, "taggerhub_rpc_duration_seconds_sum", method=method) == pytest.approx(7.02165)
    assert value(found, "taggerhub_rpc_calls_total", method=method, outcome="error") == 1
    assert value(found, "taggerhub_refused_handshakes_total", reason="bad_token") == 1
    assert value(found, "taggerhub_refused_handshakes_total", reason="tls") == 0  # known reasons start at 0
    assert value(found, "taggerhub_client_sessions", user="alice", role="user") == 2
    assert value(found, "taggerhub_server_objects", type="Countrate") == 3
    assert value(found, "taggerhub_up") == 0  # no tagger read in this reading
    assert not any(name.startswith("taggerhub_stream_") for name, _ in found)  # a server without tag streams


def test_scrape_of_a_stopped_server_answers_at_once_with_up_zero() -> None:
    collector = TaggerhubCollector(ExporterSettings(server=f"127.0.0.1:{free_port()}", timeout_s=0.5))
    started = time.monotonic()
    found = samples(build_registry(collector))
    assert time.monotonic() - started < 1.0
    assert value(found, "taggerhub_up") == 0
    assert value(found, "taggerhub_server_up") == 0
    assert not any(name.startswith("taggerhub_channel_count_rate") for name, _ in found)


def test_scrape_of_a_server_that_never_answers_ends_within_the_timeout() -> None:
    with socket.socket() as silent:  # accepts connections (backlog) but never speaks
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        collector = TaggerhubCollector(ExporterSettings(server=f"127.0.0.1:{port}", timeout_s=0.5))
        started = time.monotonic()
        found = samples(build_registry(collector))
        elapsed = time.monotonic() - started
    assert value(found, "taggerhub_up") == 0
    assert elapsed < 2.0, f"scrape took {elapsed:.1f} s"
def test_collector_reads_the_live_server_and_frees_its_countrate_on_close(hub) -> None:
    # A generous timeout: this test is about values, and the machine may be busy.
    settings = ExporterSettings(server=f"127.0.0.1:{hub.port}", channels=[1, 4], rate_window_s=0.2, timeout_s=10)
    collector = TaggerhubCollector(settings)
    registry = build_registry(collector)
    first = samples(registry)
    assert value(first, "taggerhub_up") == 1 and value(first, "taggerhub_server_up") == 1
    serial = next(dict(labels)["serial"] for name, labels in first if name == "taggerhub_tagger_info")
    assert value(first, "taggerhub_tagger_up", serial=serial) == 1
    assert value(first, "taggerhub_server_objects", type="Countrate") == 1
    time.sleep(0.5)
    second = samples(registry)
    # Default lab: ~50 kHz of heralded photons plus 200 Hz dark counts on channel 1, ~100 kHz on channel 4.
    assert value(second, "taggerhub_channel_count_rate_hertz", serial=serial, channel="1") == pytest.approx(
        50.2e3, rel=0.1)
    assert value(second, "taggerhub_channel_count_rate_hertz", serial=serial, channel="4") == pytest.approx(
        100.3e3, rel=0.1)
    assert value(second, "taggerhub_tagger_overflows_total", serial=serial) == 0
    # The server counts a call when it returns: the second scrape sees the first one.
    assert value(second, "taggerhub_rpc_calls_total", method="TimeTaggerRPC.hub_metrics", outcome="ok") == 1
    assert value(second, "taggerhub_exporter_connects_total") == 1
    collector.close()
    # A plain Pyro5 proxy is a session of its own: taggerhub's client would join this process's session
    # (the collector's), which then would not end.
    TT = Pyro5.client.Proxy(f"PYRO:TimeTaggerRPC@127.0.0.1:{hub.port}")
    TT._pyroSerializer = "msgpack"
    try:
        deadline = time.monotonic() + 5
        while TT.hub_metrics()["objects"].get("Countrate") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "Countrate" not in TT.hub_metrics()["objects"]
    finally:
        TT._pyroRelease()
def test_unknown_tagger_serial_reports_server_up_but_taggerhub_down(hub) -> None:
    collector = TaggerhubCollector(ExporterSettings(server=f"127.0.0.1:{hub.port}", serial="NOSUCHSERIAL",
                                                    timeout_s=10))
    found = samples(build_registry(collector))
    assert value(found, "taggerhub_server_up") == 1
    assert value(found, "taggerhub_up") == 0
    assert value(found, "taggerhub_tagger_up", serial="NOSUCHSERIAL") == 0
    assert value(found, "taggerhub_rpc_calls_total", method="TimeTaggerRPC.createTimeTagger", outcome="error") == 1
    collector.close()
def test_exporter_serves_without_a_server_and_exits_cleanly_on_sigterm() -> None:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "taggerhub", "exporter", "--listen", f"127.0.0.1:{port}",
                             "--server", f"127.0.0.1:{free_port()}"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_port(port, proc=proc)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            body = response.read().decode()
        assert "\ntaggerhub_up 0.0\n" in body
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        output = proc.communicate()[0]
    assert "server unavailable" in output  # logged once, as it happened
def test_channel_outside_the_tagger_reports_taggerhub_down_and_logs_why(hub, caplog) -> None:
    collector = TaggerhubCollector(ExporterSettings(server=f"127.0.0.1:{hub.port}", channels=[1, 99],
                                                    timeout_s=10))
    with caplog.at_level("WARNING", logger="taggerhub.exporter"):
        found = samples(build_registry(collector))
        samples(build_registry(collector))  # still down: logged once, not every scrape
    collector.close()
    assert value(found, "taggerhub_server_up") == 1
    assert value(found, "taggerhub_up") == 0
    warnings = [r for r in caplog.records if r.name == "taggerhub.exporter"]
    assert len(warnings) == 1 and "99" in warnings[0].error


TWO_TAGGERS = poisson_lab(("1111000MTA", 20e3), ("2222000MTB", 60e3, "Time Tagger 20"))
def test_collector_reports_every_open_tagger_of_the_server_under_its_serial(start_hub, tmp_path) -> None:
    lab = tmp_path / "two-taggers.toml"
    lab.write_text(TWO_TAGGERS)
    server = start_hub(env={"TAGGERHUB_SIMULATOR_CONFIG_FILE": str(lab)})
    collector = TaggerhubCollector(ExporterSettings(server=f"127.0.0.1:{server.port}", channels=[1],
                                                    rate_window_s=0.2, timeout_s=10))
    registry = build_registry(collector)
    TT = client.createProxy(port=server.port)
    try:
        first = samples(registry)  # nothing open yet: the exporter opens the first tagger itself
        assert value(first, "taggerhub_tagger_up", serial="1111000MTA") == 1
        assert value(first, "taggerhub_tagger_up", serial="2222000MTB") is None
        opened = TT.createTimeTagger("2222000MTB")  # a user opens the second tagger (and holds it: a dropped
        # proxy ends the user's use of it, as dropping the tagger in one process frees it)
        second = samples(registry)
        assert value(second, "taggerhub_tagger_up", serial="2222000MTB") == 1
        assert value(second, "taggerhub_up") == 1
        time.sleep(0.6)
        third = samples(registry)
        assert value(third, "taggerhub_channel_count_rate_hertz", serial="1111000MTA", channel="1") == pytest.approx(
            20e3, rel=0.1)
        assert value(third, "taggerhub_channel_count_rate_hertz", serial="2222000MTB", channel="1") == pytest.approx(
            60e3, rel=0.1)
        assert value(third, "taggerhub_tagger_overflows_total", serial="2222000MTB") == 0
        assert value(third, "taggerhub_server_objects", type="Countrate") == 2  # one per tagger, not per scrape
        assert value(third, "taggerhub_exporter_connects_total") == 1
        models = {dict(labels)["serial"]: dict(labels)["model"] for name, labels in third
                  if name == "taggerhub_tagger_info"}
        assert models == {"1111000MTA": "Time Tagger Ultra", "2222000MTB": "Time Tagger 20"}
        assert opened.getSerial() == "2222000MTB"
    finally:
        collector.close()
        TT._pyroRelease()
