"""docs/simulator-parity.md is what scripts/sim_parity.py makes of the code: it once called five simulated names
out of scope for a whole session after they were built."""

from __future__ import annotations

import subprocess
import sys

from helpers import REPO


def test_the_parity_page_is_current(tmp_path):
    fresh = tmp_path / "simulator-parity.md"
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "sim_parity.py"), str(fresh)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    committed = (REPO / "docs" / "simulator-parity.md").read_text()
    assert fresh.read_text() == committed, "rerun: python scripts/sim_parity.py docs/simulator-parity.md"
