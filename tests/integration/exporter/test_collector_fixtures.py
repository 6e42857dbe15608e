"""The collector on recorded readings (tests/integration/exporter/fixtures/): metric families and names, no server.

Each fixture is a ``Reading.as_dict()`` taken from a live simulator server (then trimmed or
edited by hand for the down cases); regenerate with ``ServerReader(...).read().as_dict()``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from taggerhub.lab.exporter import Reading, RecordedSource, TaggerhubCollector, build_registry

FIXTURES = Path(__file__).parent / "fixtures"
ALL_FIXTURES = sorted(p.name for p in FIXTURES.glob("reading_*.json"))

ALWAYS = {  # family -> type: in every scrape, server up or not
    "taggerhub_up": "gauge", "taggerhub_server_up": "gauge",
    "taggerhub_exporter_scrape_duration_seconds": "gauge", "taggerhub_exporter_connects": "counter",
    "taggerhub_tagger_up": "gauge",
}
SERVER = {  # ... and these whenever the server answered
    "taggerhub_tagger_info": "gauge",  # an info metric; the text format carries it as a gauge of 1
    "taggerhub_client_sessions": "gauge", "taggerhub_server_objects": "gauge",
    "taggerhub_rpc_calls": "counter", "taggerhub_rpc_duration_seconds": "histogram",
    "taggerhub_refused_handshakes": "counter", "taggerhub_server_connections": "counter",
    "taggerhub_server_start_time_seconds": "gauge",
}
READ = {"taggerhub_channel_count_rate_hertz": "gauge", "taggerhub_tagger_overflows": "counter"}  # a tagger was read


def scrape(fixture: str) -> dict[str, tuple[str, str, dict[tuple[str, tuple], float]]]:
    """family name -> (type, help, {(sample name, labels): value}), parsed back from the text format."""
    collector = TaggerhubCollector(source=RecordedSource.from_json(FIXTURES / fixture))
    text = generate_latest(build_registry(collector)).decode()
    return {f.name: (f.type, f.documentation, {(s.name, tuple(sorted(s.labels.items()))): s.value for s in f.samples})
            for f in text_string_to_metric_families(text)}


def sample(found: dict, family: str, name: str | None = None, **labels: str) -> float | None:
    return found[family][2].get((name or family, tuple(sorted(labels.items()))))


def test_a_reading_of_one_tagger_gives_every_family_with_its_values() -> None:
    found = scrape("reading_one_tagger.json")
    assert {name: kind for name, (kind, _, _) in found.items()} == {**ALWAYS, **SERVER, **READ}
    assert sample(found, "taggerhub_up") == 1 and sample(found, "taggerhub_server_up") == 1
    assert sample(found, "taggerhub_tagger_up", serial="2138000SIM") == 1
    rate = "taggerhub_channel_count_rate_hertz"
    assert sample(found, rate, serial="2138000SIM", channel="1") == pytest.approx(49919.0)
    assert sample(found, rate, serial="2138000SIM", channel="4") == pytest.approx(100289.1)
    assert sample(found, "taggerhub_tagger_overflows", "taggerhub_tagger_overflows_total", serial="2138000SIM") == 0
    assert sample(found, "taggerhub_exporter_connects", "taggerhub_exporter_connects_total") == 1
    assert sample(found, "taggerhub_exporter_scrape_duration_seconds") == pytest.approx(0.0072)
    assert sample(found, "taggerhub_tagger_info", serial="2138000SIM", model="Time Tagger Ultra",
                  backend="simulator", library_version="2.22.6", server_version="0.1.0") == 1
    assert sample(found, "taggerhub_client_sessions", user="anonymous", role="admin") == 1
    assert sample(found, "taggerhub_server_objects", type="Countrate") == 1
    calls = "taggerhub_rpc_calls"
    assert sample(found, calls, f"{calls}_total", method="TimeTaggerRPC.hub_metrics", outcome="ok") == 1
    duration = "taggerhub_rpc_duration_seconds"
    assert sample(found, duration, f"{duration}_bucket", method="TimeTaggerRPC.createTimeTagger", le="0.05") == 0
    assert sample(found, duration, f"{duration}_bucket", method="TimeTaggerRPC.createTimeTagger", le="0.1") == 1
    assert sample(found, duration, f"{duration}_count", method="TimeTaggerRPC.createTimeTagger") == 1
    assert sample(found, "taggerhub_server_connections", "taggerhub_server_connections_total") == 3
    assert sample(found, "taggerhub_server_start_time_seconds") == pytest.approx(1796297163.1)


def test_a_reading_without_the_server_reports_it_down_and_keeps_the_serial() -> None:
    found = scrape("reading_server_down.json")
    assert {name: kind for name, (kind, _, _) in found.items()} == ALWAYS
    assert sample(found, "taggerhub_up") == 0 and sample(found, "taggerhub_server_up") == 0
    assert sample(found, "taggerhub_tagger_up", serial="2138000SIM") == 0  # reads 0, does not vanish
    assert sample(found, "taggerhub_exporter_connects", "taggerhub_exporter_connects_total") == 2


def test_a_tagger_that_could_not_be_read_is_down_and_gives_no_rates() -> None:
    found = scrape("reading_two_taggers_one_down.json")
    assert {name: kind for name, (kind, _, _) in found.items()} == {**ALWAYS, **SERVER, **READ}
    assert sample(found, "taggerhub_up") == 0 and sample(found, "taggerhub_server_up") == 1
    assert sample(found, "taggerhub_tagger_up", serial="2138000SIM") == 1
    assert sample(found, "taggerhub_tagger_up", serial="2222000MTB") == 0
    rates = {dict(labels)["serial"] for _, labels in found["taggerhub_channel_count_rate_hertz"][2]}
    overflows = {dict(labels)["serial"] for _, labels in found["taggerhub_tagger_overflows"][2]}
    assert rates == overflows == {"2138000SIM"}
    assert sample(found, "taggerhub_refused_handshakes", "taggerhub_refused_handshakes_total", reason="bad_token") == 4
    assert sample(found, "taggerhub_client_sessions", user="ada", role="operator") == 2
    models = {dict(labels)["serial"]: dict(labels)["model"] for _, labels in found["taggerhub_tagger_info"][2]}
    assert models == {"2138000SIM": "Time Tagger Ultra", "2222000MTB": "Time Tagger 20"}


@pytest.mark.parametrize("fixture", ALL_FIXTURES)
def test_names_follow_the_prometheus_conventions(fixture: str) -> None:
    found = scrape(fixture)
    for name, (kind, help_text, samples) in found.items():
        assert name.startswith("taggerhub_"), name
        assert help_text, f"{name}: no help text"
        assert not any(unit in name for unit in ("_ms", "_milli", "_micro", "_kilo", "_percent", "_hz")), name
        assert not name.endswith(("_total", "_s", "_count", "_sum", "_bucket")), f"{name}: suffix in the base name"
        if kind == "counter":
            assert {s for s, _ in samples} <= {f"{name}_total"}, f"{name}: counter samples must end in _total"
        if "time" in name or "duration" in name:
            assert name.endswith("_seconds"), f"{name}: times are in seconds"
        if kind == "histogram":
            assert any(dict(labels).get("le") == "+Inf" for s, labels in samples if s.endswith("_bucket"))


def test_collect_is_a_pure_function_of_the_reading() -> None:
    reading = Reading.from_dict(json.loads((FIXTURES / "reading_one_tagger.json").read_text()))
    source = RecordedSource([reading])
    registry = build_registry(TaggerhubCollector(source=source))
    assert generate_latest(registry) == generate_latest(registry)  # the last reading repeats, same text
    assert Reading.from_dict(json.loads(json.dumps(reading.as_dict()))) == reading  # fixtures round-trip


def test_recorded_readings_replay_in_order() -> None:
    up, down = (Reading.from_dict(json.loads((FIXTURES / f).read_text()))
                for f in ("reading_one_tagger.json", "reading_server_down.json"))
    source = RecordedSource([up, down])
    assert [source.read(), source.read(), source.read()] == [up, down, down]
    with pytest.raises(TypeError, match="settings"):
        TaggerhubCollector()
