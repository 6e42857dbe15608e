"""Prometheus exporter: a monitoring client of the taggerhub server that serves ``/metrics``.

Three parts, bottom-up: :mod:`.reader` talks to the server and returns one
:class:`Reading` per scrape; :mod:`.collector` turns a reading into metric
families, a pure function of a swappable source (recorded readings in tests);
:mod:`.serving` serves them over HTTP until stopped.
"""

from .collector import RecordedSource, TaggerhubCollector, families
from .reader import Reading, ReadingSource, ServerReader, TaggerReading, open_serials, parse_address
from .serving import build_registry, parse_channels, run

__all__ = [
    "Reading", "ReadingSource", "RecordedSource", "ServerReader", "TaggerReading", "TaggerhubCollector",
    "build_registry", "families", "open_serials", "parse_address", "parse_channels", "run",
]
