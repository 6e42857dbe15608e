"""The simulated lab: which devices exist, their models, serials and signal sources.

Read from a TOML file (``[[device]]`` tables with ``[[device.source]]``
sources) or built in code. With no file, one Time Tagger Ultra with a photon
pair source, a pulsed laser and dark counts stands in for a real setup.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .models import ModelSpec, model_by_name
from .signals import SignalSource, source_from_mapping

DEFAULT_LAB = Path(__file__).with_name("default-lab.toml")


@dataclass
class DeviceSpec:
    serial: str
    model: ModelSpec
    sources: list[SignalSource] = field(default_factory=list)


def devices_from_mapping(data: Mapping[str, Any], where: str = "lab") -> list[DeviceSpec]:
    """Build device specs from parsed TOML, naming the table at fault on error."""
    devices = []
    for i, dev in enumerate(data.get("device", [])):
        label = f"{where}: device[{i}]"
        try:
            model = model_by_name(str(dev.get("model", "Time Tagger Ultra")))
        except ValueError as exc:
            raise ValueError(f"{label}: {exc}") from None
        serial = str(dev.get("serial", f"{model.serial_prefix}SIM{i:03d}"))
        sources = []
        for j, src in enumerate(dev.get("source", [])):
            try:
                source = source_from_mapping(src)
            except ValueError as exc:
                raise ValueError(f"{label}.source[{j}]: {exc}") from None
            for ch in source.channels():
                if not 1 <= ch <= model.channels:
                    raise ValueError(f"{label}.source[{j}]: channel {ch} is outside 1..{model.channels}")
            sources.append(source)
        devices.append(DeviceSpec(serial=serial, model=model, sources=sources))
    serials = [d.serial for d in devices]
    if len(set(serials)) != len(serials):
        raise ValueError(f"{where}: device serials must be unique, got {serials}")
    if not devices:
        raise ValueError(f"{where}: no [[device]] defined")
    return devices


def load_lab(path: str | Path | None = None) -> list[DeviceSpec]:
    """Read a lab file; ``None`` or empty reads the built-in default lab."""
    path = Path(path) if path else DEFAULT_LAB
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"simulator lab file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"simulator lab file {path} is not valid TOML: {exc}") from None
    return devices_from_mapping(data, str(path))
