"""Photon-HDF5 export of recordings, checked with phconvert's own loader and validator."""

from __future__ import annotations

import json

import numpy as np
import phconvert
import pytest

import taggerhub.sim as TT  # noqa: N812 - the vendor module's usual alias
from taggerhub.sim.photon_hdf5 import export_photon_hdf5
from taggerhub.sim.signals import PhotonPairSource, PoissonSource

SECOND = 10**12


def _record(tagger, path, channels, duration_ps):
    sync = TT.SynchronizedMeasurements(tagger)
    writer = TT.FileWriter(sync.getTagger(), str(path), channels)
    writer.setMaxFileSize(500_000)  # several data files
    stream = TT.TimeTagStream(sync.getTagger(), 10**8, channels)
    sync.startFor(duration_ps)
    assert sync.waitUntilFinished(60_000)
    writer.stop()
    return stream.getData()


def test_export_loads_and_validates_with_phconvert(make_tagger, tmp_path) -> None:
    pairs = PhotonPairSource(channel_a=1, channel_b=2, pair_rate_hz=2e5, delay_ps=2500,
                             efficiency_a=0.5, efficiency_b=0.5, jitter_a_ps=40.0, jitter_b_ps=30.0)
    tagger = make_tagger("ultra", [pairs, PoissonSource(channel=3, rate_hz=5e4)])
    live = _record(tagger, tmp_path / "run.ttbin", [1, 2, -3], SECOND // 5)
    out = export_photon_hdf5(tmp_path / "run.ttbin", tmp_path / "run.hdf5", sample_name="test sample")
    h5 = phconvert.hdf5.load_photon_hdf5(str(out))  # validates against the Photon-HDF5 specs
    try:
        phconvert.hdf5.assert_valid_photon_hdf5(h5)
        timestamps = h5.root.photon_data.timestamps.read()
        detectors = h5.root.photon_data.detectors.read()
        hardware = h5.root.setup.detectors.id_hardware.read()
        assert h5.root.photon_data.timestamps_specs.timestamps_unit.read() == 1e-12
        assert h5.root.acquisition_duration.read() == pytest.approx(0.2)
        assert h5.root.sample.sample_name.read().decode() == "test sample"
        config = json.loads(h5.root.user.taggerhub.recording_configuration.read())
        assert config["serial"] == tagger.getSerial()
    finally:
        h5.close()
    assert list(hardware) == [1, 2, -3]
    assert timestamps.size == live.size > 50_000
    np.testing.assert_array_equal(timestamps, live.getTimestamps())
    np.testing.assert_array_equal(hardware[detectors], live.getChannels())


def test_export_selects_channels_and_refuses_to_overwrite(make_tagger, tmp_path) -> None:
    tagger = make_tagger("ultra", [PoissonSource(channel=1, rate_hz=1e5), PoissonSource(channel=2, rate_hz=1e5)])
    live = _record(tagger, tmp_path / "two.ttbin", [1, 2], SECOND // 10)
    out = export_photon_hdf5([tmp_path / "two.ttbin"], tmp_path / "only2.h5", channels=[2])
    with pytest.raises(FileExistsError):
        export_photon_hdf5(tmp_path / "two.ttbin", out)
    h5 = phconvert.hdf5.load_photon_hdf5(str(out))
    try:
        timestamps = h5.root.photon_data.timestamps.read()
        assert list(h5.root.setup.detectors.id_hardware.read()) == [2]
        assert not h5.root.photon_data.detectors.read().any()
    finally:
        h5.close()
    np.testing.assert_array_equal(timestamps, live.getTimestamps()[live.getChannels() == 2])
