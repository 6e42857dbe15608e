"""Per-role and per-user limits as [limits.roles.X] / [limits.users.X] tables, shown by the CLI; experiments count."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hostile import connect, tls_env

from taggerhub.errors import AccessDenied

LIMITS_TOML = """
[limits]
max_objects = 20
overrides = ["user:oscar.measurement_bytes=1000000"]

[limits.roles.observer]
max_objects = 3

[limits.users.otto]
max_objects = 2
"""


def taggerhub(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "taggerhub", *args], capture_output=True, text=True,
                          timeout=120, check=check)


def fill(make, limit_text: str, kept: list) -> tuple[int, str]:
    """Call ``make`` until a quota refuses it (at most 50 times): how many were made, and the refusal.

    What it makes is kept in ``kept``: a dropped proxy's object is released, and gives its room back.
    """
    for made in range(50):
        try:
            kept.append(make())
        except AccessDenied as exc:
            assert limit_text in str(exc), exc
            return made, str(exc)
    raise AssertionError(f"no refusal naming {limit_text} after 50")


@pytest.fixture
def limits_server(start_auth_process, lab_pki, tmp_path: Path):
    config = tmp_path / "taggerhub.toml"
    config.write_text(LIMITS_TOML)
    return start_auth_process(**tls_env(lab_pki, TAGGERHUB_CONFIG=str(config))), config


def test_role_and_user_tables_apply_and_the_cli_shows_them(limits_server, lab_pki):
    server, config = limits_server
    oscar = connect(server, lab_pki, "oscar")
    oscar_tagger = oscar.createTimeTagger()
    kept: list = []
    assert fill(lambda: oscar.Countrate(oscar_tagger, [1]), "limits.max_objects=3", kept)[0] == 3  # its role's table
    with pytest.raises(PermissionError):
        oscar_tagger.setTestSignal(1, True)  # observers may not: one denied call
    with pytest.raises(AccessDenied, match=r"limits\.measurement_bytes=1000000"):  # the overrides entry
        oscar.Counter(oscar_tagger, [1], binwidth=10**9, n_values=10**6)
    otto = connect(server, lab_pki, "otto")
    otto_tagger = otto.createTimeTagger()
    assert fill(lambda: otto.Countrate(otto_tagger, [1]), "limits.max_objects=2", kept)[0] == 2  # the user's table
    olga = connect(server, lab_pki, "olga")
    olga_tagger = olga.createTimeTagger()
    kept.append(olga.Countrate(olga_tagger, [1]))  # the other operator has the default, 20

    tls = ["--port", str(server.port), "--tls-ca", str(lab_pki / "ca.pem"), "--token", server.tokens["ada"]]
    table = taggerhub("sessions", *tls).stdout
    header, *rows = table.splitlines()
    assert header.split()[:9] == ["session", "user", "role", "address", "since", "calls", "denied", "owned", "user"]
    by_user = {line.split()[1]: line.split() for line in rows if len(line.split()) > 1 and line.split()[1] in
               ("oscar", "otto", "olga")}
    # since is two words (date, time): then calls, denied, owned, user objects, user memory
    assert by_user["oscar"][9] == "3/3" and by_user["otto"][9] == "2/2" and by_user["olga"][9] == "1/20", by_user
    assert int(by_user["oscar"][7]) >= 1 and by_user["olga"][7] == "0"  # the denied setTestSignal
    assert by_user["oscar"][10].endswith("/976.6KiB")  # its own measurement_bytes, 10^6
    assert "limits.memory_budget_bytes" in table

    limits = taggerhub("permissions", "--config", str(config), "--only", "limits").stdout
    assert "| `max_objects` | 20 | role:observer=3, user:otto=2 |" in limits
    assert "| `measurement_bytes` | 268435456 | user:oscar=1000000 |" in limits
    both = taggerhub("permissions", "--config", str(config)).stdout
    assert both.startswith("| object | call |") and both.endswith(limits)


def test_bad_tables_are_named(tmp_path: Path) -> None:
    for text, message in (
        ("[limits.roles.observer]\nmax_object = 3\n", "[limits.roles.observer] max_object: not a per-user limit"),
        ("[limits.users.ada]\nmax_objects = -1\n", "[limits.users.ada] max_objects: must be an integer, 0"),
        ('[limits.roles.observer]\nmax_objects = "3"\n', "roles.observer.max_objects: expected an integer"),
        ('[limits]\noverrides = ["role:observer.max_objects=5"]\n[limits.roles.observer]\nmax_objects = 3\n',
         "contradicts limits.overrides 'role:observer.max_objects=5'"),
        ("[limits]\nroles = 3\n", "roles: expected a table"),
    ):
        config = tmp_path / "bad.toml"
        config.write_text(text)
        result = taggerhub("permissions", "--config", str(config), "--only", "limits", check=False)
        assert result.returncode == 2 and message in result.stderr, (text, result.stderr)


def test_experiments_count_against_the_object_quota(start_auth_server, lab_pki):
    server = start_auth_server(**tls_env(lab_pki, TAGGERHUB_LIMITS_OVERRIDES="user:otto.max_objects=3"))
    otto = connect(server, lab_pki, "otto")
    tagger = otto.createTimeTagger()
    kept: list = []
    made, refusal = fill(lambda: otto.experiment("g2", tagger, binwidth_ps=10, n_bins=200), "limits.max_objects=3",
                         kept)
    assert made == 3 and "'otto'" in refusal
    admin = connect(server, lab_pki, "ada")
    assert next(r for r in admin.hub_sessions() if r["user"] == "otto")["usage"]["objects"] == 3
    with pytest.raises(AccessDenied, match=r"limits\.max_objects=3"):
        otto.Countrate(tagger, [1])  # experiments and measurements share the quota
    otto.freeTimeTagger(tagger)  # frees the experiments with the tagger
    tagger = otto.createTimeTagger()
    kept.append(otto.experiment("g2", tagger, binwidth_ps=10, n_bins=200))
    assert next(r for r in admin.hub_sessions() if r["user"] == "otto")["usage"]["objects"] == 1
