"""Fixtures for the container tests: a Docker engine, the image built from this checkout, and
compose projects of compose.yaml (pytest-docker) on free loopback ports.

The engine comes from ``../shared/machine/docker-engine.sh`` beside the repository when that
exists (this workplace), else from the machine; the tests skip only when none answers.
``TAGGERHUB_BASE_IMAGE`` picks the base image (CI exports it), ``TAGGERHUB_BUILD_CA`` the CA
bundle pip uses inside the build (default: the system's, when present).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .containers import (
    DEFAULT_BASE_IMAGE,
    ENGINE_SCRIPT,
    PREFIX,
    REPO,
    RUN_ID,
    SYSTEM_CA,
    ComposeProject,
    docker,
    engine_answers,
    free_port,
    write_env_file,
)


@pytest.fixture(scope="session")
def docker_base_image() -> str:
    """Make sure an engine runs; return the base image to build on."""
    base = os.environ.get("TAGGERHUB_BASE_IMAGE", "")
    problem = ""
    if ENGINE_SCRIPT.exists() and (not base or not engine_answers()):
        result = subprocess.run(["bash", str(ENGINE_SCRIPT)], capture_output=True, text=True, timeout=900)
        if result.returncode == 0 and result.stdout.strip():
            base = base or result.stdout.strip().splitlines()[-1]
        else:
            problem = f"{ENGINE_SCRIPT} failed: {result.stderr.strip()[-500:]}"
    if not engine_answers():
        pytest.fail(f"no Docker engine can run here ({problem or 'docker info fails'})", pytrace=False)
    return base or DEFAULT_BASE_IMAGE


@pytest.fixture(scope="session")
def taggerhub_image(docker_base_image: str) -> Iterator[str]:
    """The image built from this checkout's Dockerfile (BuildKit's cache makes rebuilds quick)."""
    tag = f"taggerhub-{PREFIX}:{RUN_ID}"
    args = ["build", "--quiet", "--build-arg", f"BASE_IMAGE={docker_base_image}", "--tag", tag]
    ca = Path(os.environ.get("TAGGERHUB_BUILD_CA", SYSTEM_CA))
    if ca.is_file():
        args += ["--secret", f"id=ca,src={ca}"]
    docker(*args, str(REPO), timeout_s=900, env={**os.environ, "DOCKER_BUILDKIT": "1"})
    yield tag
    docker("image", "rm", tag, check=False)


# ---- pytest-docker: one compose project of compose.yaml for the session ---------------------
@pytest.fixture(scope="session")
def compose_project(taggerhub_image: str, tmp_path_factory: pytest.TempPathFactory) -> ComposeProject:
    rpc_port, metrics_port = free_port(), free_port()
    env_file = write_env_file(tmp_path_factory.mktemp("compose") / "test.env", taggerhub_image, rpc_port, metrics_port)
    return ComposeProject(f"{PREFIX}-{RUN_ID}", [REPO / "compose.yaml"], env_file, rpc_port, metrics_port)


@pytest.fixture(scope="session")
def docker_compose_file(compose_project: ComposeProject) -> list[str]:
    return [str(f) for f in compose_project.files]


@pytest.fixture(scope="session")
def docker_compose_project_name(compose_project: ComposeProject) -> str:
    return compose_project.name


@pytest.fixture(scope="session")
def docker_compose_command(compose_project: ComposeProject) -> str:
    return f"docker compose --env-file {compose_project.env_file}"


@pytest.fixture(scope="session")
def docker_setup() -> list[str]:
    # The image is built by the taggerhub_image fixture: never build or pull here. Waiting for
    # healthy happens in taggerhub_service, after which pytest-docker always runs the cleanup.
    return ["up --detach --no-build --pull never"]


@pytest.fixture(scope="session")
def docker_cleanup() -> list[str]:
    return ["down --volumes --timeout 30"]


@pytest.fixture(scope="session")
def taggerhub_service(docker_services, compose_project: ComposeProject) -> ComposeProject:
    """compose.yaml up and healthy (pytest-docker starts it and takes it down after the session)."""
    assert docker_services.port_for("taggerhub", compose_project.rpc_port) == compose_project.rpc_port
    docker_services.wait_until_responsive(lambda: compose_project.health() == "healthy", timeout=120, pause=0.5)
    return compose_project
