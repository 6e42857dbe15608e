"""Export recordings to Photon-HDF5, the open file standard for timestamped photon data.

Uses the reference implementation ``phconvert`` (optional extra
``taggerhub[recordings]``), imported only when exporting. Works on the files
alone: no tagger, simulated or real, is needed. The whole selection is held in
memory (16 bytes a tag while reading, 10 in the output arrays), because
phconvert writes complete arrays.

Mapping: every tag becomes one photon; ``/photon_data/timestamps`` holds the
tag times in picoseconds (``timestamps_unit = 1e-12``), ``/photon_data/detectors``
the index of the tag's channel in the exported channel list, and
``/setup/detectors`` maps each index to the Time Tagger channel
(``id_hardware``, negative numbers are falling edges) with a label.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .recording import RecordCursor, data_files, read_header, recording_info

TIMESTAMP_UNIT_S = 1e-12
READ_BLOCK = 1 << 20


def _load_tags(paths: Sequence[Path], channels: Sequence[int] | None) -> tuple[np.ndarray, np.ndarray]:
    """All tags of the recordings (in the given order), restricted to ``channels``: (times, channels)."""
    cursor = RecordCursor([part for path in paths for part in data_files(path)])
    times, chans = [], []
    while True:
        block = cursor.read(READ_BLOCK)
        if block.size == 0:
            break
        if channels is not None:
            block = block[np.isin(block["channel"], np.asarray(channels, dtype=np.int32))]
        times.append(block["time"].astype(np.int64))
        chans.append(block["channel"].astype(np.int32))
    if not times:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int32)
    return np.concatenate(times), np.concatenate(chans)


def export_photon_hdf5(
    recording_paths: str | Path | Sequence[str | Path],
    out_path: str | Path,
    *,
    channels: Sequence[int] | None = None,
    description: str | None = None,
    sample_name: str | None = None,
    author: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write the tags of one or more recordings to a Photon-HDF5 file and return its path.

    ``recording_paths``: sequence headers (``run.ttbin``) or single data files, concatenated in order.
    ``channels``: the channels to export (default: every channel recorded, in the order of the first header).
    The file is validated by phconvert while it is written; an existing ``out_path`` is kept unless
    ``overwrite``.
    """
    try:
        import phconvert
    except ImportError as exc:  # the optional extra is missing
        raise RuntimeError("Photon-HDF5 export needs phconvert: pip install 'taggerhub[recordings]'") from exc

    paths = [Path(recording_paths)] if isinstance(recording_paths, str | Path) else [Path(p) for p in recording_paths]
    if not paths:
        raise ValueError("export_photon_hdf5 needs at least one recording")
    out_path = Path(out_path)
    if out_path.exists() and not overwrite:
        raise FileExistsError(f"{out_path} exists (pass overwrite=True to replace it)")
    header, _ = read_header(paths[0])
    exported = [int(c) for c in (channels if channels is not None else header.get("channels", []))]
    if not exported:
        raise ValueError("no channels to export")
    if len(set(exported)) != len(exported):
        raise ValueError(f"channels listed twice: {exported}")
    times, chans = _load_tags(paths, exported)
    order = np.argsort(times, kind="stable")  # several recordings may interleave
    times, chans = times[order], chans[order]
    index_of = {c: i for i, c in enumerate(exported)}
    lookup = np.vectorize(index_of.__getitem__, otypes=[np.uint16])
    detectors = lookup(chans) if chans.size else np.zeros(0, dtype=np.uint16)

    configuration = header.get("configuration", {})
    data: dict[str, Any] = {
        "description": description or f"Time tags of {', '.join(p.name for p in paths)} "
                                      f"({configuration.get('model', 'Time Tagger')} "
                                      f"{configuration.get('serial', '')})".strip(),
        "photon_data": {
            "timestamps": times,
            "detectors": detectors,
            "timestamps_specs": {"timestamps_unit": TIMESTAMP_UNIT_S},
            "measurement_specs": {"measurement_type": "generic",
                                  # one "spectral channel" per tagger channel: the specs' generic layout
                                  "detectors_specs": {f"spectral_ch{i + 1}": np.array([i], dtype=np.uint16)
                                                      for i in range(len(exported))}},
        },
        "setup": {
            "num_pixels": len(exported), "num_spots": 1, "num_spectral_ch": len(exported),
            "num_polarization_ch": 1, "num_split_ch": 1, "modulated_excitation": False,
            "excitation_alternated": [False], "excitation_cw": [True], "lifetime": False,
            "detectors": {
                "id": np.arange(len(exported), dtype=np.uint16),
                "id_hardware": np.asarray(exported, dtype=np.int32),
                "label": [f"channel {c}" for c in exported],
                "counts": np.bincount(detectors, minlength=len(exported)).astype(np.int64),
            },
        },
        "identity": {"software": "taggerhub", "format_name": "Photon-HDF5"},
        "user": {"taggerhub": {"recording_configuration": json.dumps(configuration, default=str),
                               "recordings": json.dumps([str(p) for p in paths])}},
    }
    spans = [recording_info(p) for p in paths]
    if all(s["begin_ps"] is not None and s["end_ps"] is not None for s in spans):
        data["acquisition_duration"] = sum(s["end_ps"] - s["begin_ps"] for s in spans) * TIMESTAMP_UNIT_S
    elif times.size:
        data["acquisition_duration"] = float((times[-1] - times[0]) * TIMESTAMP_UNIT_S)
    if sample_name:
        data["sample"] = {"sample_name": sample_name}
    if author:
        data["identity"]["author"] = author
    out_path.parent.mkdir(parents=True, exist_ok=True)
    phconvert.hdf5.save_photon_hdf5(data, h5_fname=str(out_path), overwrite=True, warnings=False)
    return out_path
