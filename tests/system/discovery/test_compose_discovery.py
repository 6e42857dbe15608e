"""The compose file's discovery profile adds the name server, and only with that profile."""

from __future__ import annotations

import json
import subprocess

import pytest

from helpers import REPO

pytestmark = pytest.mark.needs("docker")


def config(*args: str, env: dict[str, str] | None = None) -> dict:
    result = subprocess.run(["docker", "compose", "-f", str(REPO / "compose.yaml"), *args, "config", "--format",
                             "json"], capture_output=True, text=True, timeout=60,
                            env={"PATH": "/usr/local/bin:/usr/bin:/bin", **(env or {})})
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_discovery_profile_adds_the_name_server_on_the_chosen_address() -> None:
    assert "nameserver" not in config()["services"]
    service = config("--profile", "discovery", env={"TAGGERHUB_BIND": "192.0.2.9",
                                                    "TAGGERHUB_NS_PORT": "9190"})["services"]["nameserver"]
    assert service["command"][:2] == ["taggerhub", "nameserver"]
    assert {(p["host_ip"], p["published"], p["target"]) for p in service["ports"]} == {("192.0.2.9", "9190", 9090)}
    assert {v["target"] for v in service["volumes"]} == {"/var/lib/taggerhub"}
    assert "sql:/var/lib/taggerhub/ns.sqlite" in service["command"]
    assert "locate_ns" in " ".join(service["healthcheck"]["test"])
