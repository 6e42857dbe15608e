"""The simulator's measurements, virtual channels and data objects over a live taggerhub server."""

from __future__ import annotations

import numpy as np

from helpers import wait_until
from taggerhub import client


def test_virtual_channels_streams_and_synchronized_measurements_work_remotely(hub):
    TT = client.createProxy(port=hub.port)
    tagger = TT.createTimeTagger()
    tagger.setTestSignal([1, 2], True)

    delayed = TT.DelayedChannel(tagger, 1, 3000)
    sync = TT.SynchronizedMeasurements(tagger)
    proxy_tagger = sync.getTagger()
    corr = TT.Correlation(proxy_tagger, delayed.getChannel(), 1, binwidth=100, n_bins=100)
    rate = TT.Countrate(proxy_tagger, [1, delayed.getChannel()])
    assert not rate.isRunning()  # measurements on the proxy tagger wait for the group
    sync.startFor(int(5e10))
    assert sync.waitUntilFinished(20_000)
    assert corr.getIndex()[corr.getData().argmax()] == 3050
    counts = rate.getCountsTotal()
    assert counts[0] == counts[1] == 40_000  # 800 kHz for 50 ms, the delayed copy included

    stream = TT.TimeTagStream(tagger, 1_000_000, [2])
    counter = TT.Counter(tagger, [2], binwidth=int(1e10), n_values=5)
    # Properties of result objects (buffer.size) are not served yet, see NOTES-sim.md; methods are.
    wait_until(lambda: counter.getDataObject().getIndex().size >= 2, 20, "two counter bins", every_s=0.05)
    buffer = stream.getData()
    stamps = buffer.getTimestamps()
    assert buffer.getChannels().size == stamps.size > 0 and stamps.dtype == np.int64
    assert np.allclose(np.diff(stamps), 1_250_000, atol=100)  # the 800 kHz test signal
    snapshot = counter.getDataObject()
    assert (snapshot.getData() == 8000).all()
    TT.freeTimeTagger(tagger)


def test_server_serves_the_lab_file_with_its_channel_settings(start_hub, tmp_path):
    lab = tmp_path / "lab.toml"
    lab.write_text(
        '[[device]]\nserial = "LAB2000"\nmodel = "Time Tagger 20"\n'
        '[[device.source]]\nkind = "poisson"\nchannel = 3\nrate_hz = 50000.0\n'
        "[device.channel.1]\ntest_signal = true\nevent_divider = 2\n"
    )
    server = start_hub(env={"TAGGERHUB_SIMULATOR_CONFIG_FILE": str(lab)})
    TT = client.createProxy(port=server.port)
    assert TT.scanTimeTagger() == ["LAB2000"]
    tagger = TT.createTimeTagger()
    assert tagger.getModel() == "Time Tagger 20" and tagger.getTestSignal(1)
    rate = TT.Countrate(tagger, [1, 3])
    rate.startFor(int(5e11))
    assert rate.waitUntilFinished(20_000)
    test_signal, poisson = rate.getData()
    assert abs(test_signal - 62.5e6 / 74 / 2) / (62.5e6 / 74 / 2) < 0.01  # the lab's event divider applies
    assert abs(poisson - 5e4) / 5e4 < 0.05
    TT.freeTimeTagger(tagger)


def test_stop_frees_a_synchronized_group_left_behind_when_its_tagger_was_freed(start_hub):
    """Freeing the last child of an unused parent frees the parent too; the shutdown walk must not free it twice."""
    server = start_hub()
    TT = client.createProxy(port=server.port)
    tagger = TT.createTimeTagger()
    sync = TT.SynchronizedMeasurements(tagger)
    rate = TT.Countrate(sync.getTagger(), [1])  # held: a dropped proxy's object would be released
    TT.freeTimeTagger(tagger)
    objects_left = TT.hub_status()["objects"]
    assert objects_left > 0
    assert server.stop() == objects_left
    del rate
