"""The control lease on an injected clock: expiry, renewal and release without waiting."""

from __future__ import annotations

import pytest

from taggerhub.access.lease import MAX_LEASE_S, ControlLease
from taggerhub.errors import AccessDenied


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_lease_blocks_others_until_it_runs_out(clock: FakeClock) -> None:
    lease = ControlLease(clock)
    assert lease.acquire("s1", "otto", "127.0.0.1:1", 2) == 2.0
    with pytest.raises(AccessDenied, match=r"held by user 'otto' \(session s1, 127.0.0.1:1\), 2 s left"):
        lease.check("s2")
    lease.check("s1")  # the holder may
    clock.now += 1.9
    with pytest.raises(AccessDenied, match="0 s left"):
        lease.check("s2")
    clock.now += 0.1
    lease.check("s2")  # ran out by itself
    assert lease.holder() is None


def test_renewing_extends_and_another_session_cannot_take_it(clock: FakeClock) -> None:
    lease = ControlLease(clock)
    lease.acquire("s1", "otto", "a", 10)
    clock.now += 8
    lease.acquire("s1", "otto", "a", 10)  # renewal from now
    clock.now += 8
    with pytest.raises(AccessDenied, match="held by user 'otto'"):
        lease.acquire("s2", "olga", "b", 5)
    clock.now += 2
    assert lease.acquire("s2", "olga", "b", 5) == 5.0


def test_release_needs_the_holder_or_force(clock: FakeClock) -> None:
    lease = ControlLease(clock)
    assert lease.release("s1") is False
    lease.acquire("s1", "otto", "a", 10)
    with pytest.raises(AccessDenied, match="not by you"):
        lease.release("s2")
    assert lease.release("s2", force=True) is True
    assert lease.holder() is None


def test_drop_ends_only_the_departing_holders_lease(clock: FakeClock) -> None:
    lease = ControlLease(clock)
    lease.acquire("s1", "otto", "a", 10)
    assert lease.drop("s2") is False and lease.held()
    assert lease.drop("s1") is True and not lease.held()


@pytest.mark.parametrize("bad", [0, -1, MAX_LEASE_S + 1, "10", True, None, float("nan")])
def test_bad_timeouts_are_refused_with_the_range(clock: FakeClock, bad: object) -> None:
    with pytest.raises(ValueError, match=r"acquireControl\(timeout_s\): expected seconds in \(0, 86400\]"):
        ControlLease(clock).acquire("s1", "otto", "a", bad)  # type: ignore[arg-type]
