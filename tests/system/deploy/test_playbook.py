"""The playbook converges throwaway lab PCs (systemd containers) and a second run changes nothing.

Containers stand in for lab PCs, reached through the community.docker.docker connection:
systemd runs as PID 1 and the role installs and starts taggerhub. `pc-open` and `pc-closed`
run native mode from a wheelhouse built from this checkout; `pc-open` lets the Docker bridge
network reach the RPC port, `pc-closed` allows only a documentation network, so its firewall
must drop the host's connection while the server still answers on its own loopback.
`pc-docker` runs Docker mode on a nested Docker engine, with the image loaded from an offline
bundle. Auth, TLS and the exporter are on everywhere, as a real lab runs them.
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from labpcs import (
    BASE_IMAGE,
    REPO,
    LabPCs,
    changed_tasks,
    native_simulator_vars,
    playbook,
    run,
    wheelhouse,
)

import helpers

PREFIX = f"deploy-{os.getpid()}"
CLI_PLUGINS = Path("/usr/libexec/docker/cli-plugins")

# The first test's time includes the module's lab: wheels, images, booting the PCs and the first converge
# take up to 8 minutes when the other worker of a parallel run builds its own lab beside it (README, "Tests").
pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(900)]


def require_docker_mode() -> None:
    """Docker mode needs the image's files and a compose plugin to lend the PC: missing ones fail."""
    needed = ("Dockerfile", "compose.yaml", "compose.hardware.yaml", "scripts/make-offline-bundle.sh")
    helpers.require_files(*(REPO / f for f in needed), CLI_PLUGINS / "docker-compose")


def make_bundle(tmp: Path, image: str) -> Path:
    """Build the image from this checkout and write the offline bundle, as a lab admin would."""
    bundle = tmp / "taggerhub-bundle-deploytest.tar"
    env = {**os.environ, "TAGGERHUB_BASE_IMAGE": BASE_IMAGE}
    ca = Path("/etc/ssl/certs/ca-certificates.crt")
    if ca.exists():
        env["TAGGERHUB_BUILD_CA"] = str(ca)
    run("bash", str(REPO / "scripts" / "make-offline-bundle.sh"), "--image", image, "--output", str(bundle),
        timeout=900, env=env)
    return bundle


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    helpers.require_docker()
    require_docker_mode()
    tmp = tmp_path_factory.mktemp("deploy")
    wheels = wheelhouse(tmp_path_factory)
    pcs = LabPCs(PREFIX)
    try:
        image = pcs.build_image("labpc")
        for host in ("pc-open", "pc-closed"):
            pcs.boot(host, image, "--volume", "/sys/fs/cgroup:/sys/fs/cgroup:ro")
        taggerhub_image = f"taggerhub:{PREFIX}"
        bundle = make_bundle(tmp, taggerhub_image)
        # Only the bundle carries the image to the PC: the builder's copy is not needed.
        run("docker", "image", "rm", taggerhub_image, check=False)
        # The nested engine makes cgroups of its own, stores images on a volume (overlay2
        # cannot sit on the container's overlay root) and enters its containers' namespaces
        # for health checks (SYS_PTRACE); the compose plugin comes from here.
        pcs.boot("pc-docker", pcs.build_image("labpc-docker"), "--cap-add", "SYS_PTRACE",
                  "--volume", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "--mount", "type=volume,dst=/var/lib/docker",
                  "--volume", f"{CLI_PLUGINS}:{CLI_PLUGINS}:ro")
        docker_vars = {
            "taggerhub_mode": "docker",
            "taggerhub_docker_install": False,  # the PC has Debian's engine; no registry here
            "taggerhub_image": taggerhub_image,
            "taggerhub_image_source": "bundle",
            "taggerhub_bundle_file": str(bundle),
            "taggerhub_compose_src_dir": str(REPO),
        }
        bridge = json.loads(run("docker", "network", "inspect", "bridge").stdout)[0]["IPAM"]["Config"][0]["Subnet"]
        inventory = {"taggerhub": {
            "vars": {
                **native_simulator_vars(wheels),
                "taggerhub_auth_enabled": True,
                "taggerhub_tls_enabled": True,
                "taggerhub_insecure": False,
                "taggerhub_exporter_enabled": True,
                "taggerhub_tokens_local_dir": str(tmp / "tokens"),
            },
            "hosts": {
                host: {
                    "ansible_host": pcs.names[host],
                    "taggerhub_listen_host": pcs.ips[host],
                    "taggerhub_allowed_networks": [bridge] if host != "pc-closed" else ["192.0.2.0/24"],
                    # The live lab page, over HTTPS with the server's certificate (TLS is on).
                    "taggerhub_web_enabled": host != "pc-closed",
                    **(docker_vars if host == "pc-docker" else {}),
                } for host in pcs.names
            },
        }}
        inventory_file = tmp / "inventory.yml"
        inventory_file.write_text(json.dumps(inventory, indent=2))  # JSON is YAML
        yield {"pcs": pcs, "inventory": inventory_file, "tmp": tmp}
    finally:
        pcs.remove()


def diagnostics(pcs: LabPCs) -> str:
    """The services' own words from every PC, for a failed run's message."""
    parts = [pcs.journals()]
    if "pc-docker" in pcs.names:
        logs = pcs.exec("pc-docker", "sh", "-c", "docker ps -a; docker logs --tail 30 taggerhub-taggerhub-1 2>&1; "
                        "docker inspect --format '{{json .State.Health}}' taggerhub-taggerhub-1", check=False)
        parts.append(f"\n--- pc-docker: container ---\n{logs.stdout[-3000:]}")
    return "".join(parts)


def play(deployment: dict) -> tuple[str, dict[str, dict[str, int]]]:
    status, out, recap = playbook(deployment["inventory"], deployment["tmp"])
    assert status == 0, out[-6000:] + diagnostics(deployment["pcs"])
    assert set(recap) == set(deployment["pcs"].names), out[-3000:]
    return out, recap


def reachable(ip: str, port: int, timeout_s: float = 3.0) -> bool:
    try:
        with socket.create_connection((ip, port), timeout=timeout_s):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def converged(deployment: dict) -> dict:
    _, recap = play(deployment)
    deployment["first"] = recap
    return deployment


def credentials(converged: dict, host: str) -> dict[str, str]:
    """Token and lab CA for a PC (auth and TLS are on): the token the role saved, the CA from the PC."""
    ca = converged["tmp"] / f"{host}-ca.pem"
    ca.write_text(converged["pcs"].exec(host, "cat", "/etc/taggerhub/tls/ca.pem").stdout)
    token = (converged["tmp"] / "tokens" / "admin.token").read_text().strip()  # lab-wide
    return {"token": token, "tls_ca": str(ca)}


def test_first_run_converges_and_changes_things(converged: dict) -> None:
    for host, counts in converged["first"].items():
        assert counts["failed"] == 0 and counts["unreachable"] == 0, host
        assert counts["changed"] > 0, host


@pytest.mark.parametrize("host", ["pc-open", "pc-docker"])
def test_rpc_server_answers_from_the_allowed_network(converged: dict, host: str) -> None:
    from taggerhub import client

    ip = converged["pcs"].ips[host]
    deadline = time.monotonic() + 30
    while not reachable(ip, 23000, 1.0) and time.monotonic() < deadline:
        time.sleep(0.5)
    TT = client.createProxy(host=ip, port=23000, **credentials(converged, host))
    tagger = TT.createTimeTagger()
    tagger.setTestSignal(1, True)
    rate = TT.Countrate(tagger, [1])
    rate.startFor(int(2e11))
    rate.waitUntilFinished()
    (hz,) = rate.getData()
    assert 7e5 < hz < 9e5  # the simulated Ultra's internal test signal, about 800 kHz
    assert TT.hub_status()["backend"] == "simulator"


def test_firewall_drops_the_rpc_port_for_other_networks(converged: dict) -> None:
    pcs = converged["pcs"]
    assert not reachable(pcs.ips["pc-closed"], 23000)
    # The server itself is up there: it answers on the PC's own loopback... and on its own
    # address from inside the PC, which the fib-local rule lets through only from lo.
    auth = credentials(converged, "pc-closed")
    env = [f"--env=TAGGERHUB_TOKEN={auth['token']}", "--env=TAGGERHUB_CLIENT_TLS_CA=/etc/taggerhub/tls/ca.pem"]
    status = run("docker", "exec", *env, pcs.names["pc-closed"], "/opt/taggerhub/venv/bin/taggerhub", "status",
                 "--host", pcs.ips["pc-closed"], "--port", "23000", check=False, timeout=120)
    assert status.returncode == 0, status.stdout + status.stderr
    assert "simulator" in status.stdout


def test_service_runs_sandboxed_as_the_service_user(converged: dict) -> None:
    pcs = converged["pcs"]
    show = pcs.exec("pc-open", "systemctl", "show", "taggerhub-native.service",
                    "--property=ActiveState,User,NoNewPrivileges,ProtectSystem,PrivateTmp,DevicePolicy,MainPID").stdout
    props = dict(line.split("=", 1) for line in show.splitlines())
    assert props["ActiveState"] == "active"
    assert (props["User"], props["NoNewPrivileges"], props["ProtectSystem"]) == ("taggerhub", "yes", "strict")
    assert (props["PrivateTmp"], props["DevicePolicy"]) == ("yes", "closed")
    owner = pcs.exec("pc-open", "stat", "--format=%U", f"/proc/{props['MainPID']}").stdout.strip()
    assert owner == "taggerhub"
    # The installed units verify cleanly on the target too, with the real virtualenv in place.
    verify = pcs.exec("pc-open", "systemd-analyze", "verify", "/etc/systemd/system/taggerhub-native.service",
                      "/etc/systemd/system/taggerhub-firewall.service", check=False)
    assert verify.returncode == 0 and verify.stderr.strip() == "", verify.stderr
    rules = pcs.exec("pc-open", "cat", "/etc/udev/rules.d/99-timetagger.rules").stdout
    assert 'ATTR{idVendor}=="151f"' in rules and 'GROUP="taggerhub"' in rules


@pytest.mark.parametrize("host", ["pc-open", "pc-docker"])
def test_exporter_serves_metrics_to_the_lab_scraper_only(converged: dict, host: str) -> None:
    url = f"http://{converged['pcs'].ips[host]}:9234/metrics"
    scraper = (converged["tmp"] / "tokens" / "scraper-prometheus.token").read_text().strip()  # made by the role
    deadline = time.monotonic() + 30
    body = ""
    while time.monotonic() < deadline:
        try:
            request = urllib.request.Request(url, headers={"Authorization": f"Bearer {scraper}"})
            body = urllib.request.urlopen(request, timeout=3).read().decode()
            if re.search(r"^taggerhub_up 1", body, flags=re.M):
                break
        except OSError:
            pass
        time.sleep(1)
    assert re.search(r"^taggerhub_up 1", body, flags=re.M), body[:2000]
    with pytest.raises(urllib.error.HTTPError) as refused:  # no credential, no metrics
        urllib.request.urlopen(url, timeout=3)
    assert refused.value.code == 401


def docker_container_id(pcs: LabPCs) -> str:
    return pcs.exec("pc-docker", "docker", "ps", "--quiet", "--no-trunc", "--filter",
                    "label=com.docker.compose.service=taggerhub").stdout.strip()


@pytest.mark.parametrize("host", ["pc-open", "pc-docker"])
def test_web_page_answers_over_https_where_the_role_enabled_it(converged: dict, host: str) -> None:
    import ssl

    import httpx

    pcs = converged["pcs"]
    auth = credentials(converged, host)
    base = f"https://{pcs.ips[host]}:8023"
    with httpx.Client(base_url=base, verify=ssl.create_default_context(cafile=auth["tls_ca"]), timeout=5) as browser:
        deadline = time.monotonic() + 60
        while True:
            try:
                page = browser.get("/")
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, f"no page at {base}:\n" + diagnostics(pcs)
                time.sleep(1)
        assert page.status_code == 200 and 'id="login-form"' in page.text
        login = browser.post("/api/login", json={"token": auth["token"]}, headers={"Origin": base})
        assert login.json() == {"user": "admin", "role": "admin"}  # checked by the PC's server
    if host == "pc-open":
        assert pcs.exec(host, "systemctl", "is-active", "taggerhub-web.service").stdout.strip() == "active"
        verify = pcs.exec(host, "systemd-analyze", "verify", "/etc/systemd/system/taggerhub-web.service", check=False)
        assert verify.returncode == 0 and verify.stderr.strip() == "", verify.stderr
    assert not reachable(pcs.ips["pc-closed"], 8023)  # not enabled there


def test_docker_mode_runs_the_compose_project_under_its_unit(converged: dict) -> None:
    pcs = converged["pcs"]
    assert pcs.exec("pc-docker", "systemctl", "is-active", "taggerhub.service").stdout.strip() == "active"
    container = docker_container_id(pcs)
    assert container, "no taggerhub container runs on pc-docker"
    health = pcs.exec("pc-docker", "docker", "inspect", "--format", "{{.State.Health.Status}} {{.Config.Image}}",
                      container).stdout.split()
    assert health[0] == "healthy" and health[1].startswith("taggerhub:")
    # The settings the role wrote are what the server inside runs with.
    env = pcs.exec("pc-docker", "cat", "/opt/taggerhub/compose/.env").stdout
    assert f"TAGGERHUB_BIND={pcs.ips['pc-docker']}" in env


def test_second_run_changes_nothing(converged: dict) -> None:
    pcs = converged["pcs"]
    container = docker_container_id(pcs) if "pc-docker" in pcs.names else ""
    before = pcs.exec("pc-open", "systemctl", "show", "taggerhub-native.service", "--property=MainPID").stdout
    out, recap = play(converged)
    for host, counts in recap.items():
        assert counts["changed"] == 0, f"{host} changed on the second run:\n" + changed_tasks(out)
    after = pcs.exec("pc-open", "systemctl", "show", "taggerhub-native.service", "--property=MainPID").stdout
    assert before == after, "the second run restarted the server"
    if container:
        assert docker_container_id(pcs) == container, "the second run recreated the container"
