"""The kinds of served object: one enum that the adapter, the rules table and the server all read.

A ``StrEnum``, so a kind compares equal to its name and prints as it (audit lines, messages).
"""

from __future__ import annotations

import enum


class ObjectKind(enum.StrEnum):
    """What a served object is, which decides which rules apply to its methods."""

    library = "library"  # the module itself: constructors and functions
    tagger = "tagger"  # a TimeTagger (real, simulated or a synchronized group's)
    iterator = "iterator"  # a measurement or virtual channel
    synchronized = "synchronized"  # SynchronizedMeasurements
    result = "result"  # any other backend object handed out (data objects of measurements)
    experiment = "experiment"  # a server-side experiment plugin


MEASUREMENT_KINDS = (ObjectKind.iterator, ObjectKind.synchronized, ObjectKind.result)
