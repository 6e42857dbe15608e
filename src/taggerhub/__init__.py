"""taggerhub: serve one Swabian Instruments Time Tagger to many users and programs, safely.

Layers, bottom-up: ``config`` -> ``backend``/``sim`` -> ``adapter`` ->
``sessions``/``auth`` -> ``server`` -> ``cli``; ``client`` and ``exporter`` talk
to a server over the network.
"""

__version__ = "0.1.0"
