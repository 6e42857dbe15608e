"""The name server's systemd unit passes systemd-analyze, and its command line really runs a name server."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import REPO, VENV_BIN, free_port, wait_until
from taggerhub.wire import naming

UNIT = REPO / "systemd" / "taggerhub-nameserver.service"


@pytest.mark.needs("systemd-analyze")
def test_nameserver_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    unit = tmp_path / UNIT.name
    unit.write_text(UNIT.read_text().replace("/opt/taggerhub/venv/bin", str(VENV_BIN)))
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stderr.strip() == "", result.stderr
    broken = tmp_path / "broken" / UNIT.name
    broken.parent.mkdir()
    broken.write_text(unit.read_text().replace("Restart=always", "Restart=sometimes"))
    result = subprocess.run(["systemd-analyze", "verify", str(broken)], capture_output=True, text=True, timeout=60)
    assert "sometimes" in result.stderr
def test_unit_command_line_runs_a_name_server_that_keeps_entries_across_restarts(tmp_path: Path) -> None:
    """ExecStart as shipped (storage moved into tmp_path) serves names, and its SQLite file keeps them."""
    (exec_start,) = re.findall(r"^ExecStart=(.*)$", UNIT.read_text(), flags=re.M)
    argv = shlex.split(exec_start.replace("/opt/taggerhub/venv/bin/taggerhub", f"{sys.executable} -m taggerhub")
                       .replace("/var/lib/taggerhub-nameserver", str(tmp_path)))
    port = free_port()
    env = {"TAGGERHUB_DISCOVERY_NS_HOST": "127.0.0.1", "TAGGERHUB_DISCOVERY_NS_PORT": str(port),
           "PATH": "/usr/bin:/bin"}

    def start() -> tuple[subprocess.Popen, object]:
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def located() -> object:
            try:
                return naming.locate("127.0.0.1", port)
            except Exception:
                assert proc.poll() is None, "name server exited"
                return None

        return proc, wait_until(located, 15, "the name server to come up", 0.1)

    proc, ns = start()
    try:
        ns.register("taggerhub.pc1.1234000SIM", "PYRO:TimeTaggerRPC@127.0.0.1:23000",
                    metadata=naming.metadata(host="pc1", serial="1234000SIM"))
        ns._pyroRelease()
        proc.terminate()
        assert proc.wait(10) == 0  # a clean stop on SIGTERM, as systemd sends
        proc, ns = start()
        uri, meta = ns.lookup("taggerhub.pc1.1234000SIM", return_metadata=True)
        assert str(uri) == "PYRO:TimeTaggerRPC@127.0.0.1:23000"
        assert naming.parse_metadata(meta) == {"host": "pc1", "serial": "1234000SIM"}
    finally:
        proc.kill()
        proc.wait(10)
