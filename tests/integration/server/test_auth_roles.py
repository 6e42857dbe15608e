"""Roles, ownership, the control lease and sessions over a live server with real tokens."""

from __future__ import annotations

import os
import signal
import time

import Pyro5.errors
import pytest
from TimeTaggerRPC import client as vendor_client

from taggerhub import client
from taggerhub.access.rules import Level, table
from taggerhub.access.users import UserStore
from taggerhub.backend.adapter import BackendApi
from taggerhub.backend.loader import load_simulator
from taggerhub.config import SimulatorSettings
from taggerhub.errors import AccessDenied, ObjectGone

# Arguments for every device-setting call the simulator serves; the test fails if one is missing.
SETTING_CALLS = {
    "setTestSignal": (1, True), "setTriggerLevel": (1, 0.5), "setDeadtime": (1, 2000), "setDelaySoftware": (1, 0),
    "setEventDivider": (1, 1), "setInputDelay": (1, 0), "setTestSignalDivider": (1,), "setTestSignalSource": (0,),
    "clearOverflows": (), "getOverflowsAndClear": (), "sync": (), "reset": (),
    "clearConditionalFilter": (), "disableLEDs": (False,), "setConditionalFilter": ([1], [2]),
    "setDelayHardware": (1, 0), "setHardwareBufferSize": (64 * 1024 * 1024,),
    "setHardwareDelayCompensationActive": (True,), "setInputHysteresis": (1, 20), "setInputImpedanceHigh": (1, False),
    "setInputMux": (1, 0), "setInternalClockTrim": (0.0,), "setLED": (0,), "setNormalization": ([1], True),
    "setSoundFrequency": (0,), "setStreamBlockSize": (131072, 20),
    "setSoftwareClock": (3, 10e6, 1000, False), "disableSoftwareClock": (),
    "setReferenceClock": (3, 10e6, 1e-3, -134217728, 0, False), "disableReferenceClock": (),
    "xtra_setAutoStart": (True,),
}
# The simulated Ultra refuses these, after authorization.
X_ONLY = {"setInputHysteresis", "setInputImpedanceHigh", "setInternalClockTrim"}
MEASUREMENT_CONTROL = {"start": (), "startFor": (int(1e9),), "stop": (), "clear": (), "abort": ()}


def served_calls(level: Level, owner: str) -> set[str]:
    api = BackendApi(load_simulator(SimulatorSettings()))
    return {name for cls, name, lvl, _ in table(api) if lvl is level and cls == owner}


def connect(server, user: str):
    return client.createProxy(port=server.port, token=server.tokens[user])


def test_every_setting_call_refused_for_observer_allowed_for_operator(auth_server):
    assert served_calls(Level.setting, "TimeTagger") == set(SETTING_CALLS)
    TT_oscar, TT_otto = connect(auth_server, "oscar"), connect(auth_server, "otto")
    observer, operator = TT_oscar.createTimeTagger(), TT_otto.createTimeTagger()
    for name, args in SETTING_CALLS.items():
        with pytest.raises(AccessDenied, match=rf"{name}\(\) needs role operator.*'oscar' is observer"):
            getattr(observer, name)(*args)
        if name in X_ONLY:
            with pytest.raises(RuntimeError, match="only available on the Time Tagger X"):
                getattr(operator, name)(*args)  # allowed, and reached the device
        else:
            getattr(operator, name)(*args)  # allowed
    # Reads stay open to observers.
    assert observer.getTriggerLevel(1) == pytest.approx(0.5)
    assert observer.getSerial() == operator.getSerial()


def test_measurement_control_only_for_its_creator_and_admins(auth_server):
    assert served_calls(Level.own, "Countrate") == set(MEASUREMENT_CONTROL)
    TT_otto, TT_oscar, TT_ada = (connect(auth_server, u) for u in ("otto", "oscar", "ada"))
    tagger = TT_otto.createTimeTagger()
    tagger.setTestSignal(1, True)
    rate = TT_otto.Countrate(tagger, [1])
    # Another operator and an observer get the measurement (by its URI) and may read it, not control it.
    for user in ("olga", "oscar"):
        theirs = client.Proxy(rate._pyroUri, token=auth_server.tokens[user])
        assert theirs.isRunning() is True
        theirs.getData()
        for name, args in MEASUREMENT_CONTROL.items():
            with pytest.raises(AccessDenied, match="belongs to 'otto'"):
                getattr(theirs, name)(*args)
    # The creator and an admin may.
    for name, args in MEASUREMENT_CONTROL.items():
        getattr(rate, name)(*args)
    as_admin = client.Proxy(rate._pyroUri, token=auth_server.tokens["ada"])
    as_admin.stop()
    # An observer's own measurement is theirs to control.
    mine = TT_oscar.Countrate(TT_oscar.createTimeTagger(), [1])
    for name, args in MEASUREMENT_CONTROL.items():
        getattr(mine, name)(*args)
    assert TT_ada.hub_status()["objects"] >= 3


def test_free_tagger_frees_for_everyone_only_when_an_admin_calls_it(auth_server):
    TT_otto, TT_oscar, TT_ada = (connect(auth_server, u) for u in ("otto", "oscar", "ada"))
    tagger = TT_otto.createTimeTagger()
    rate = TT_otto.Countrate(tagger, [1])
    # Operator and observer: freeTimeTagger only ends their own use; the device stays open for others.
    TT_oscar.freeTimeTagger(TT_oscar.createTimeTagger())
    TT_olga = connect(auth_server, "olga")
    other = TT_olga.createTimeTagger()
    serial = other.getSerial()
    TT_otto.freeTimeTagger(tagger)
    assert other.getSerial() == serial
    assert TT_ada.hub_status()["devices"]
    # Admin: freed for everyone, with every measurement on it.
    admin_tagger = TT_ada.createTimeTagger()
    TT_ada.freeTimeTagger(admin_tagger)
    assert TT_ada.hub_status()["devices"] == []
    with pytest.raises(ObjectGone):
        other.setTestSignal(1, True)
    with pytest.raises(ObjectGone):
        rate.stop()


def test_control_lease_blocks_settings_of_others_and_ends(auth_server):
    TT_otto, TT_olga, TT_oscar = (connect(auth_server, u) for u in ("otto", "olga", "oscar"))
    mine, theirs = TT_otto.createTimeTagger(), TT_olga.createTimeTagger()
    with pytest.raises(AccessDenied, match="needs role operator"):
        TT_oscar.acquireControl(10)
    assert TT_otto.acquireControl(30) == 30
    with pytest.raises(AccessDenied, match=r"control lease held by user 'otto'"):
        theirs.setTestSignal(2, True)
    with pytest.raises(AccessDenied, match="held by user 'otto'"):
        TT_olga.acquireControl(5)
    assert theirs.getTestSignal(2) is False  # reading is never blocked
    mine.setTestSignal(2, True)  # the holder may
    assert TT_otto.releaseControl() is True
    theirs.setTestSignal(2, False)
    # Times out by itself: tests/unit/access/test_lease.py, on the lease's injected clock.
    # Ends when the holder disconnects.
    TT_olga.acquireControl(60)
    for proxy in (TT_olga, theirs):
        proxy._pyroRelease()
    deadline = time.monotonic() + 5
    while True:
        try:
            mine.setTestSignal(3, True)
            break
        except AccessDenied:
            assert time.monotonic() < deadline, "lease survived its holder's disconnect"
            time.sleep(0.05)
    with pytest.raises(ValueError, match="timeout_s"):
        TT_otto.acquireControl(-1)


def test_sessions_listed_and_ended_by_admin_only(auth_server):
    TT_ada, TT_oscar = connect(auth_server, "ada"), connect(auth_server, "oscar")
    held = TT_oscar.Countrate(TT_oscar.createTimeTagger(), [1])  # held: a dropped one is released
    with pytest.raises(AccessDenied, match="needs role admin"):
        TT_oscar.hub_sessions()
    rows = TT_ada.hub_sessions()
    oscar = next(r for r in rows if r["user"] == "oscar")
    assert oscar["role"] == "observer" and oscar["objects_owned"] >= 1 and oscar["calls"] >= 2
    assert next(r for r in rows if r["you"])["user"] == "ada"
    assert TT_ada.hub_end_session(oscar["id"]) >= 1
    deadline = time.monotonic() + 5
    while any(r["id"] == oscar["id"] for r in TT_ada.hub_sessions()):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    with pytest.raises(LookupError, match="no session"):
        TT_ada.hub_end_session("s999999")
    del held


def test_tokens_checked_at_handshake_and_changes_apply_without_restart(start_auth_process):
    auth_server = start_auth_process()  # SIGHUP reloads the users file: a real process
    with pytest.raises(Pyro5.errors.CommunicationError, match="needs an access token"):
        client.createProxy(port=auth_server.port, token="")
    with pytest.raises(Pyro5.errors.CommunicationError, match="token not valid"):
        client.createProxy(port=auth_server.port, token=auth_server.tokens["otto"] + "x")
    with pytest.raises(Pyro5.errors.CommunicationError, match="rejected"):
        vendor_client.createProxy(port=auth_server.port)  # no token: refused before any object is reachable
    store = UserStore(auth_server.users_file)
    TT_otto = connect(auth_server, "otto")  # connected with the token about to be rotated
    otto_tagger = TT_otto.createTimeTagger()
    new_token = store.rotate("otto")  # file change: picked up on the next connection or call
    time.sleep(1.1)
    with pytest.raises(Pyro5.errors.CommunicationError, match="token not valid"):
        client.createProxy(port=auth_server.port, token=auth_server.tokens["otto"])
    with pytest.raises(AccessDenied, match="token user 'otto' connected with has been replaced"):
        otto_tagger.getSerial()  # a leaked token's open connection loses its rights too
    assert client.createProxy(port=auth_server.port, token=new_token).getVersion()
    TT_oscar = connect(auth_server, "oscar")
    oscar_tagger = TT_oscar.createTimeTagger()
    store.set_role("oscar", "operator")
    os.kill(auth_server.server.proc.pid, signal.SIGHUP)  # immediate reload
    time.sleep(0.3)
    oscar_tagger.setTestSignal(1, True)  # the new role applies to the open connection
    store.remove("oscar")
    os.kill(auth_server.server.proc.pid, signal.SIGHUP)
    time.sleep(0.3)
    with pytest.raises(AccessDenied, match="'oscar' has been removed"):
        oscar_tagger.getSerial()
    with pytest.raises(Pyro5.errors.CommunicationError, match="token not valid"):
        client.createProxy(port=auth_server.port, token=auth_server.tokens["oscar"])
    refused = connect(auth_server, "ada").hub_metrics()["rpc"]["refused_handshakes"]
    assert refused["no_token"] >= 1 and refused["bad_token"] >= 3


def test_audit_log_records_connections_refusals_and_state_changes(auth_server):
    TT = connect(auth_server, "otto")
    tagger = TT.createTimeTagger()
    tagger.setTestSignal(4, True)
    tagger.getSerial()  # reads are not audited
    TT_oscar = connect(auth_server, "oscar")
    observer = TT_oscar.createTimeTagger()
    with pytest.raises(AccessDenied):
        observer.setTriggerLevel(1, 0.1)
    with pytest.raises(Pyro5.errors.CommunicationError):
        client.createProxy(port=auth_server.port, token="nobody.secret")
    time.sleep(0.2)
    events = auth_server.audit()
    calls = [e for e in events if e["event"] == "call"]
    assert {"time", "user", "address", "method", "args", "outcome"} <= set(calls[0])
    assert any(e["user"] == "otto" and e["method"] == "TimeTagger.setTestSignal" and e["args"] == "4, True"
               and e["outcome"] == "ok" for e in calls)
    assert any(e["user"] == "oscar" and e["method"] == "TimeTagger.setTriggerLevel" and e["outcome"] == "denied"
               for e in calls)
    assert not any(e["method"].endswith("getSerial") for e in calls)
    assert any(e["event"] == "refused" and e["reason"] == "bad_token" for e in events)
    assert any(e["event"] == "connect" and e["user"] == "oscar" for e in events)


def test_per_user_connection_limit(start_auth_server):
    server = start_auth_server(TAGGERHUB_AUTH_MAX_CONNECTIONS_PER_USER="2")
    TT = connect(server, "otto")
    tagger = TT.createTimeTagger()
    tagger.getSerial()  # its own connection: otto has two now
    with pytest.raises(Pyro5.errors.CommunicationError, match="already has 2 connections"):
        connect(server, "otto")
    assert connect(server, "olga").getVersion()  # others unaffected
    TT._pyroRelease()
    time.sleep(0.2)
    assert connect(server, "otto").getVersion()


def test_vendor_client_still_works_with_auth_off_on_localhost(start_hub):
    server = start_hub()  # auth off on localhost: the vendor client works as before
    TT = vendor_client.createProxy(port=server.port)
    tagger = TT.createTimeTagger()
    tagger.setTestSignal(1, True)
    assert tagger.getTestSignal(1) is True


def test_control_lease_binds_sessions_with_auth_off_too(start_hub):
    server = start_hub()
    ours, theirs = client.createProxy(port=server.port), vendor_client.createProxy(port=server.port)
    mine, their_tagger = ours.createTimeTagger(), theirs.createTimeTagger()
    assert ours.acquireControl(30) == 30
    with pytest.raises(PermissionError, match="control lease held by user 'anonymous'"):
        their_tagger.setTestSignal(1, True)  # the vendor's client gets a plain PermissionError
    assert their_tagger.getTestSignal(1) is False
    mine.setTestSignal(1, True)
    assert ours.releaseControl() is True
    their_tagger.setTestSignal(1, False)


# Calls that change an object passed to them as an argument, by who calls them: (call, expected outcome per user).
# otto owns the measurement and the group used as arguments; "mine" is the caller's own SynchronizedMeasurements.
ARGUMENT_CALLS = {
    "mine.registerMeasurement(otto's measurement)": {"ada": "ok", "otto": "ok", "olga": "belongs to 'otto'",
                                                     "oscar": "belongs to 'otto'"},
    "mine.unregisterMeasurement(otto's measurement)": {"ada": "ok", "otto": "ok", "olga": "ok", "oscar": "ok"},
    "Countrate(otto's group tagger)": {"ada": "ok", "otto": "ok", "olga": "belongs to 'otto'",
                                       "oscar": "belongs to 'otto'"},
    "Countrate(own group tagger)": {"ada": "ok", "otto": "ok", "olga": "ok", "oscar": "ok"},
    "Countrate(tagger)": {"ada": "ok", "otto": "ok", "olga": "ok", "oscar": "ok"},
}


def test_calls_that_change_an_argument_need_the_right_to_change_it(auth_server):
    """Role x argument-call matrix: handing a server object to a call never grants more than calling it directly."""
    TT_otto = connect(auth_server, "otto")
    tagger = TT_otto.createTimeTagger()
    tagger.setTestSignal(1, True)
    rate = TT_otto.Countrate(tagger, [1])
    group = TT_otto.SynchronizedMeasurements(tagger)
    for user in ("ada", "otto", "olga", "oscar"):  # admin, operator, another operator, observer
        TT = connect(auth_server, user)
        their_tagger = TT.createTimeTagger()
        mine = TT.SynchronizedMeasurements(their_tagger)
        otto_rate = client.Proxy(rate._pyroUri, token=auth_server.tokens[user])
        otto_group = client.Proxy(group._pyroUri, token=auth_server.tokens[user])
        otto_group_tagger = otto_group.getTagger()  # reading another's group: allowed
        assert otto_group_tagger.getInputDelay(1) == tagger.getInputDelay(1)
        calls = {  # name: (remote method, arguments)
            "mine.registerMeasurement(otto's measurement)": (mine.registerMeasurement, (otto_rate,)),
            "mine.unregisterMeasurement(otto's measurement)": (mine.unregisterMeasurement, (otto_rate,)),
            "Countrate(otto's group tagger)": (TT.Countrate, (otto_group_tagger, [1])),
            "Countrate(own group tagger)": (TT.Countrate, (mine.getTagger(), [1])),
            "Countrate(tagger)": (TT.Countrate, (their_tagger, [1])),
        }
        assert set(calls) == set(ARGUMENT_CALLS)
        for name, (method, args) in calls.items():
            expected = ARGUMENT_CALLS[name][user]
            if expected == "ok":
                method(*args)
            else:
                with pytest.raises(AccessDenied, match=rf"would (change|join) .*{expected}.*only its creator or "
                                                       "an admin"):
                    method(*args)
        # A refused registration leaves the measurement alone: the caller's group start/stop do not reach it.
        assert rate.isRunning() is True
        if ARGUMENT_CALLS["mine.registerMeasurement(otto's measurement)"][user] != "ok":
            mine.stop()
            assert rate.isRunning() is True
    # The owner's group does drive the measurements its owner registered, and an admin's may drive anyone's.
    group.registerMeasurement(rate)
    group.stop()
    assert rate.isRunning() is False
    TT_ada = connect(auth_server, "ada")
    admins = TT_ada.SynchronizedMeasurements(TT_ada.createTimeTagger())
    admins.registerMeasurement(client.Proxy(rate._pyroUri, token=auth_server.tokens["ada"]))
    admins.start()
    assert rate.isRunning() is True
    # Every refusal is audited with the object and its owner.
    time.sleep(0.2)
    denied = [e for e in auth_server.audit() if e["event"] == "call" and e["outcome"] == "denied"]
    assert any(e["user"] == "olga" and e["method"] == "SynchronizedMeasurements.registerMeasurement"
               and "Countrate" in e["error"] and "belongs to 'otto'" in e["error"] for e in denied)
    assert any(e["user"] == "oscar" and e["method"] == "TimeTaggerRPC.Countrate"
               and "SynchronizedMeasurements" in e["error"] for e in denied)


def test_settings_through_a_group_tagger_respect_roles_and_the_lease(auth_server):
    TT_otto, TT_olga, TT_oscar = (connect(auth_server, u) for u in ("otto", "olga", "oscar"))
    group = TT_otto.SynchronizedMeasurements(TT_otto.createTimeTagger())
    as_olga = client.Proxy(group._pyroUri, token=auth_server.tokens["olga"]).getTagger()
    as_oscar = client.Proxy(group._pyroUri, token=auth_server.tokens["oscar"]).getTagger()
    with pytest.raises(AccessDenied, match="needs role operator"):
        as_oscar.setInputDelay(2, 100)
    as_olga.setInputDelay(2, 100)  # a device setting: any operator, as on the tagger itself
    TT_otto.acquireControl(30)
    with pytest.raises(AccessDenied, match="control lease held by user 'otto'"):
        as_olga.setInputDelay(2, 0)
    assert as_oscar.getInputDelay(2) == 100
    TT_otto.releaseControl()
    as_olga.setInputDelay(2, 0)
    assert TT_olga.getVersion() and TT_oscar.getVersion()
