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


CHANNEL_KEYS = {
    "test_signal": bool, "trigger_level_v": float, "delay_ps": int, "deadtime_ps": int, "event_divider": int,
}


@dataclass
class DeviceSpec:
    serial: str
    model: ModelSpec
    sources: list[SignalSource] = field(default_factory=list)
    # Start-up settings per input, e.g. {1: {"trigger_level_v": 0.3, "deadtime_ps": 10000}}; applied through
    # the tagger's own setters, so out-of-range values fail like a script's setter call would.
    channels: dict[int, dict[str, Any]] = field(default_factory=dict)


def _channel_settings(table: Mapping[str, Any], model: ModelSpec, label: str) -> dict[int, dict[str, Any]]:
    settings: dict[int, dict[str, Any]] = {}
    for key, values in table.items():
        try:
            channel = int(key)
        except ValueError:
            raise ValueError(f"{label}.channel: {key!r} is not a channel number") from None
        if not 1 <= abs(channel) <= model.channels:
            raise ValueError(f"{label}.channel.{key}: channel is outside 1..{model.channels}")
        unknown = set(values) - set(CHANNEL_KEYS)
        if unknown:
            raise ValueError(f"{label}.channel.{key}: unknown settings {sorted(unknown)}; "
                             f"known: {sorted(CHANNEL_KEYS)}")
        settings[channel] = {k: CHANNEL_KEYS[k](v) for k, v in values.items()}
    return settings


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
        channels = _channel_settings(dev.get("channel", {}), model, label)
        devices.append(DeviceSpec(serial=serial, model=model, sources=sources, channels=channels))
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
