"""Paste the current ``taggerhub permissions`` table into docs/security.md (tests/integration/cli/test_permissions checks it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "security.md"
START = "| object | call | level |"
END = "then drive the measurement |\n"  # the last row of the argument table


def main() -> int:
    table = subprocess.run([sys.executable, "-m", "taggerhub", "permissions", "--only", "calls"],
                           capture_output=True, text=True,
                           check=True).stdout
    text = DOC.read_text()
    start = text.index(START)
    end = text.index(END, start) + len(END)
    DOC.write_text(text[:start] + table + text[end:])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
