"""Plugin files the tests write into a plugin folder: one good, one that fails to import, one not a plugin."""

from __future__ import annotations

from pathlib import Path

GOOD = '''
"""A lab's plugin: count rates over a fixed time, and one method that wrongly leaks a backend object."""
from taggerhub.experiments import Experiment


class Rates(Experiment):
    """Counts per channel over a capture."""

    name = "rates"

    def __init__(self, backend, tagger, channels=(1, 2)):
        super().__init__(backend, tagger)
        self._counter = self.measurement("Countrate", list(channels))

    def startFor(self, capture_duration_ps):
        self._counter.startFor(int(capture_duration_ps))

    def waitUntilFinished(self, timeout_ms=-1):
        return self._counter.waitUntilFinished(int(timeout_ms))

    def getCounts(self):
        return self._counter.getCountsTotal()

    def getMeasurement(self):
        return self._counter  # not plain data: the server must refuse to hand it out
'''

BROKEN = '''
from taggerhub.experiments import Experiment

class Broken(Experiment)   # missing colon
    name = "broken"
'''

NOT_A_PLUGIN = '''
VALUE = 1
'''


def write_plugins(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "rates.py").write_text(GOOD)
    (folder / "broken.py").write_text(BROKEN)
    (folder / "helpers.py").write_text(NOT_A_PLUGIN)
    return folder
