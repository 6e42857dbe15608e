"""Experiments over a live `taggerhub serve` with auth on: roles, ownership, audit, sharing, bad plugins."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import Pyro5.errors
import pytest
from pluginfiles import write_plugins

from helpers import AuthServer
from taggerhub import client
from taggerhub.access.users import UserStore
from taggerhub.errors import AccessDenied

USERS = {"ada": "admin", "otto": "operator", "oscar": "observer"}


@dataclass
class LabServer(AuthServer):
    """An auth server with the test's experiment plugins loaded."""

    plugin_dir: Path = Path()


@pytest.fixture
def lab_server(start_hub, tmp_path: Path) -> LabServer:
    store = UserStore(tmp_path / "users.toml")
    tokens = {name: store.add(name, role) for name, role in USERS.items()}
    folder = write_plugins(tmp_path / "plugins")
    audit = tmp_path / "audit.jsonl"
    server = start_hub(env={
        "TAGGERHUB_AUTH_ENABLED": "true", "TAGGERHUB_AUTH_USERS_FILE": str(store.path),
        "TAGGERHUB_AUTH_AUDIT_LOG": str(audit), "TAGGERHUB_SIMULATOR_CLOCK": "virtual",
        "TAGGERHUB_SIMULATOR_SEED": "11", "TAGGERHUB_EXPERIMENTS_PLUGIN_DIR": str(folder),
    })
    return LabServer(server, store.path, audit, tokens, folder)


SECOND = 10**12


def connect(server, user: str):
    return client.createProxy(port=server.port, token=server.tokens[user])


def test_operator_runs_g2_observer_reads_but_cannot_control_and_audit_records_it(lab_server):
    TT_otto, TT_oscar, TT_ada = (connect(lab_server, u) for u in ("otto", "oscar", "ada"))
    tagger = TT_otto.createTimeTagger()
    g2 = TT_otto.experiment("g2", tagger, binwidth_ps=10, n_bins=2000)
    g2.startFor(SECOND // 2)
    assert g2.waitUntilFinished(60_000)
    mine = g2.getResult()
    # The default lab: pairs 1 -> 2 after 2.5 ns, 30 ps per arm and the Ultra's 9 ps per channel.
    assert abs(mine["fit"]["center_ps"] - 2500) < 5
    assert abs(mine["fit"]["sigma_ps"] - (2 * 30.0**2 + 2 * 9.0**2) ** 0.5) < 4
    assert mine["g2"].shape == (2000,) and mine["capture_ps"] == SECOND // 2

    theirs = client.Proxy(g2._pyroUri, token=lab_server.tokens["oscar"])
    assert theirs.getResult()["fit"] == mine["fit"]  # reading is for everyone
    assert theirs.getParameters()["binwidth_ps"] == 10
    for name, args in {"stop": (), "start": (), "startFor": (SECOND,), "clear": ()}.items():
        with pytest.raises(AccessDenied, match=rf"{name}\(\): this measurement belongs to 'otto'"):
            getattr(theirs, name)(*args)
    client.Proxy(g2._pyroUri, token=lab_server.tokens["ada"]).stop()  # admins may

    # The tagger stays shared: the observer's own measurement on it runs next to the experiment.
    rate = TT_oscar.Countrate(TT_oscar.createTimeTagger(), [1, 2])
    assert rate.getData().shape == (2,)
    assert "g2" in TT_oscar.experiments()["experiments"]
    own = TT_oscar.experiment("g2", TT_oscar.createTimeTagger(), channel_start=3, channel_stop=4)
    own.start()  # creating is the 'create' level, as for measurements: an observer's experiment is theirs
    own.stop()
    assert TT_ada.hub_status()["objects"] >= 3

    calls = [e for e in lab_server.audit() if e.get("event") == "call"]
    made = [(e["user"], e["method"], e["outcome"]) for e in calls]
    assert ("otto", "TimeTaggerRPC.experiment", "ok") in made
    assert ("otto", "Experiment_G2.startFor", "ok") in made
    assert ("oscar", "Experiment_G2.stop", "denied") in made
    assert ("ada", "Experiment_G2.stop", "ok") in made
    assert ("oscar", "TimeTaggerRPC.experiment", "ok") in made and ("oscar", "Experiment_G2.start", "ok") in made
    assert not any(m.endswith((".getResult", ".waitUntilFinished")) for _, m, _ in made)  # reads not audited


def test_experiment_is_freed_when_its_owner_disconnects_while_the_tagger_stays(lab_server):
    TT_ada = connect(lab_server, "ada")
    tagger = TT_ada.createTimeTagger()  # keeps the device open after otto leaves
    before = TT_ada.hub_status()["objects"]
    TT_otto = connect(lab_server, "otto")
    otto_tagger = TT_otto.createTimeTagger()
    g2 = TT_otto.experiment("g2", otto_tagger)
    g2.start()
    assert g2.isRunning() and TT_ada.hub_status()["objects"] == before + 1
    uri = g2._pyroUri
    for proxy in (g2, otto_tagger, TT_otto):  # every connection of otto's session: the session ends
        proxy._pyroRelease()
    deadline = time.monotonic() + 10
    while TT_ada.hub_status()["objects"] != before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert TT_ada.hub_status()["objects"] == before
    with pytest.raises(Pyro5.errors.CommunicationError, match="unknown object"):
        client.Proxy(uri, token=lab_server.tokens["ada"]).getParameters()
    assert tagger.getSerial()


def test_bad_plugin_is_reported_by_file_while_the_server_serves_the_good_ones(lab_server):
    TT_oscar, TT_otto = connect(lab_server, "oscar"), connect(lab_server, "otto")
    broken = str(lab_server.plugin_dir / "broken.py")
    assert broken in lab_server.server.log()  # logged at start
    offered = TT_oscar.experiments()
    assert sorted(offered["experiments"]) == ["g2", "rates"] and "SyntaxError" in offered["errors"][broken]
    tagger = TT_otto.createTimeTagger()
    with pytest.raises(LookupError, match=r"'broken' is not available: .*broken\.py.*SyntaxError"):
        TT_otto.experiment("broken", tagger)
    with pytest.raises(LookupError, match="unknown experiment 'lifetime'"):
        TT_otto.experiment("lifetime", tagger)
    with pytest.raises(TypeError, match=r"experiment 'g2': .*unexpected keyword argument 'binwidth'"):
        TT_otto.experiment("g2", tagger, binwidth=10)
    with pytest.raises(ValueError, match="experiment 'g2': g2 needs two different channels"):
        TT_otto.experiment("g2", tagger, channel_start=2, channel_stop=2)

    rates = TT_otto.experiment("rates", tagger, channels=[1, 2])
    rates.startFor(SECOND // 10)
    assert rates.waitUntilFinished(60_000)
    counts = rates.getCounts()
    assert 3_000 < counts[0] < 7_000  # 50 kHz singles on channel 1 for 0.1 s
    with pytest.raises(TypeError, match=r"experiment 'rates' getMeasurement\(\) returned a .*Countrate.*plain data"):
        rates.getMeasurement()
    assert TT_otto.hub_status()["server"] == "taggerhub"  # still serving after every error
