"""The image with the hardware backend: the vendor library serves, and the USB overlay is strict."""

from __future__ import annotations

from pathlib import Path

import pytest

from taggerhub import client

from .containers import PREFIX, REPO, RUN_ID, ComposeProject, docker, free_port, wait_until, write_env_file

pytestmark = [pytest.mark.docker, pytest.mark.slow]


@pytest.fixture
def hardware_container(taggerhub_image):
    """The image run as plain `docker run`, hardware backend, no USB device attached."""
    name, port = f"{PREFIX}-hw-{RUN_ID}", free_port()
    try:
        docker("run", "--detach", "--name", name, "--publish", f"127.0.0.1:{port}:{port}",
               "--env", "TAGGERHUB_SERVER_BACKEND=hardware", "--env", f"TAGGERHUB_SERVER_PORT={port}",
               "--env", "TAGGERHUB_SERVER_INSECURE=true", "--env", "TAGGERHUB_SERVER_ADVERTISE_HOST=127.0.0.1",
               taggerhub_image)
        yield name, port
    finally:
        docker("rm", "--force", "--volumes", name, check=False)


def test_hardware_backend_serves_the_vendor_library_and_reports_no_device(hardware_container):
    name, port = hardware_container
    TT = wait_until(lambda: client.createProxy(host="127.0.0.1", port=port), timeout_s=60, what="server answering")
    assert TT.hub_status()["backend"] == "hardware"
    # The vendor library itself answers: there is no Time Tagger on this machine's USB.
    with pytest.raises(Exception, match="No Time Tagger attached"):
        TT.createTimeTagger()
    assert TT.hub_status()["backend"] == "hardware"  # and the server stays up
    assert '"backend": "hardware"' in docker("logs", name).stderr + docker("logs", name).stdout


def test_hardware_overlay_never_invents_a_usb_bus_on_a_host_without_one(taggerhub_image, tmp_path: Path):
    if Path("/dev/bus/usb").exists():
        pytest.skip("this host has a USB bus: the overlay would really pass it through")
    had_udev = Path("/run/udev").exists()
    project = ComposeProject(
        f"{PREFIX}-hwoverlay-{RUN_ID}", [REPO / "compose.yaml", REPO / "compose.hardware.yaml"],
        write_env_file(tmp_path / "test.env", taggerhub_image, free_port(), free_port()), 0, 0,
    )
    try:
        result = project.compose("up", "--detach", "--no-build", "--pull", "never", check=False)
        output = result.stdout + result.stderr
        assert result.returncode != 0
        # The engine names the first missing source: the USB bus, or the udev database.
        assert "bind source path does not exist: /dev/bus/usb" in output \
            or "bind source path does not exist: /run/udev" in output
        assert not Path("/dev/bus/usb").exists()
        assert Path("/run/udev").exists() == had_udev
    finally:
        project.compose("down", "--volumes", check=False)
