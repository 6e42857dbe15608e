"""A flood of denied calls closes the offender's session with one audit line; others are served."""

from __future__ import annotations

import time

import Pyro5.errors
import pytest
from hostile import connect, tls_env

from taggerhub.errors import AccessDenied

BURST = 50


def test_denied_call_flood_is_cut_off_and_audited_once(start_auth_server, lab_pki):
    server = start_auth_server(**tls_env(lab_pki))  # defaults: limits.denied_burst=50, denied_per_s=2
    victim = connect(server, lab_pki, "otto")
    victim_tagger = victim.createTimeTagger()
    TT = connect(server, lab_pki, "oscar")
    tagger = TT.createTimeTagger()
    denied, cut_off = 0, False
    deadline = time.monotonic() + 10
    while denied < 10_000 and time.monotonic() < deadline:
        try:
            tagger.setTestSignal(1, True)  # observer: needs operator
        except AccessDenied:
            denied += 1
        except Pyro5.errors.CommunicationError:
            cut_off = True
            break
    assert cut_off, f"{denied} denied calls and the connection is still open"
    assert BURST <= denied <= BURST + 5
    audit = server.audit()
    denied_lines = [e for e in audit if e["event"] == "call" and e["outcome"] == "denied"]
    throttled = [e for e in audit if e["event"] == "throttled"]
    assert len(throttled) == 1 and throttled[0]["user"] == "oscar" and throttled[0]["denied"] >= BURST
    assert "limits.denied_burst=50" in throttled[0]["limit"]
    assert len(denied_lines) <= BURST + 1
    assert victim_tagger.getSerial()  # others are served
    # Reconnecting does not reset the user's debt: new connections are refused while it drains.
    with pytest.raises(Pyro5.errors.CommunicationError, match="too many denied calls"):
        connect(server, lab_pki, "oscar").createTimeTagger()
    assert len([e for e in server.audit() if e["event"] == "throttled"]) == 1
    assert victim_tagger.getSerial()
