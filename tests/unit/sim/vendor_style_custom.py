"""Custom measurements written against the vendor's API only: ``import TimeTagger``, nothing from taggerhub.

The tests import this module with ``sys.modules["TimeTagger"]`` pointing at ``taggerhub.sim``, the way
lab code written for the vendor library would run on the simulator unchanged.
"""

import numpy as np
import TimeTagger


class CountPerChannel(TimeTagger.CustomMeasurement):
    """Counts the tags of each channel."""

    def __init__(self, tagger, channels):
        TimeTagger.CustomMeasurement.__init__(self, tagger)
        self.channels = list(channels)
        self.counts = np.zeros(len(self.channels), dtype=np.int64)
        self.starts = 0
        self.stops = 0
        for channel in self.channels:
            self.register_channel(channel)
        self.clear_impl()
        self.finalize_init()

    def __del__(self):
        self.stop()

    def getData(self):
        with self.mutex:
            return self.counts.copy()

    def clear_impl(self):
        self.counts[:] = 0

    def on_start(self):
        self.starts += 1

    def on_stop(self):
        self.stops += 1

    def process(self, incoming_tags, begin_time, end_time):
        for i, channel in enumerate(self.channels):
            self.counts[i] += np.count_nonzero(incoming_tags["channel"] == channel)


class StartStopHistogram(TimeTagger.CustomMeasurement):
    """Histogram of click - start for every start and every click up to ``binwidth * n_bins`` later."""

    def __init__(self, tagger, click_channel, start_channel, binwidth, n_bins):
        TimeTagger.CustomMeasurement.__init__(self, tagger)
        self.click_channel = click_channel
        self.start_channel = start_channel
        self.binwidth = binwidth
        self.n_bins = n_bins
        self.window = binwidth * n_bins
        self.data = np.zeros(n_bins, dtype=np.int64)
        self.open_starts = np.zeros(0, dtype=np.int64)  # starts whose window reaches into later chunks
        self.register_channel(click_channel)
        self.register_channel(start_channel)
        self.clear_impl()
        self.finalize_init()

    def getData(self):
        self._lock()
        try:
            return self.data.copy()
        finally:
            self._unlock()

    def getIndex(self):
        return np.arange(self.n_bins) * self.binwidth

    def clear_impl(self):
        self.data[:] = 0
        self.open_starts = np.zeros(0, dtype=np.int64)

    def on_start(self):
        self.open_starts = np.zeros(0, dtype=np.int64)

    def process(self, incoming_tags, begin_time, end_time):
        times = incoming_tags["time"]
        channels = incoming_tags["channel"]
        starts = np.concatenate([self.open_starts, times[channels == self.start_channel]])
        clicks = times[channels == self.click_channel]
        first = np.searchsorted(clicks, starts, side="left")
        last = np.searchsorted(clicks, starts + self.window, side="left")
        per_start = last - first
        offsets = np.arange(per_start.sum()) - np.repeat(np.cumsum(per_start) - per_start, per_start)
        dt = clicks[np.repeat(first, per_start) + offsets] - np.repeat(starts, per_start)
        self.data += np.bincount(dt // self.binwidth, minlength=self.n_bins)
        self.open_starts = starts[starts + self.window > end_time]
