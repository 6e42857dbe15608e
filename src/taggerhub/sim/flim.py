"""FLIM: per-pixel lifetime histograms of a scanned image, framed by pixel/line/frame marker channels.

``FlimBase``, ``Flim`` (with ``FlimFrameInfo``) and ``FlimAbstract`` with the vendor's constructor
and methods. Each click is histogrammed by its time since the latest tag on ``start_channel`` (the
laser sync) into the pixel open at that moment. Choices where the vendor's docstrings are silent:

- A pixel opens on a ``pixel_begin_channel`` tag and closes on a ``pixel_end_channel`` tag, or,
  without one, at the next pixel begin (so the last pixel of a frame closes on the next frame's first
  pixel begin). A pixel begin while a pixel is open closes it first.
- After ``n_pixels`` closed pixels a frame is complete. A ``frame_begin_channel`` tag closes the open
  pixel (which may complete the frame), then drops an incomplete frame and resets the pixel index.
- ``n_frame_average`` input frames are summed into one output frame.
- Frames are ``(n_pixels, n_bins)`` arrays, the row-major layout of ``frameReady``'s flat ``data``
  (pixel ``i``, bin ``j`` at ``i * n_bins + j``).
- Intensity is counts per picosecond of pixel time (the library's time unit); 0 for an empty pixel.

Markers are handled in a loop over marker tags (pixel rates are far below click rates); clicks are
binned with NumPy.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .engine import Chunk
from .enums import CHANNEL_UNUSED
from .handles import TaggerHandle as TimeTaggerBase  # the vendor's annotation, without importing the tagger
from .iterators import IteratorBase
from .measurements import positive

_PIXEL_END, _FRAME_BEGIN, _PIXEL_BEGIN = 0, 1, 2  # order of markers at the same time


def _intensity(counts: np.ndarray, begins: np.ndarray, ends: np.ndarray) -> np.ndarray:
    spans = (ends - begins).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(spans > 0, counts / spans, 0.0).astype(np.float32)


class FlimFrameInfo:
    """One FLIM frame with its pixel times, as the vendor's ``get...Ex`` methods return it."""

    def __init__(self, histograms: np.ndarray, pixel_begins: np.ndarray, pixel_ends: np.ndarray,
                 frame_number: int, pixel_position: int, valid: bool):
        self._histograms = histograms.astype(np.uint32)
        self._begins = pixel_begins.astype(np.int64)
        self._ends = pixel_ends.astype(np.int64)
        self._frame_number = int(frame_number)
        self._pixel_position = int(pixel_position)
        self._valid = bool(valid)

    # Properties on the class (not instance attributes), so reflection sees them as the vendor's.
    @property
    def pixels(self) -> int:
        """Number of pixels in the frame."""
        return int(self._histograms.shape[0])

    @property
    def bins(self) -> int:
        """Number of bins of each histogram."""
        return int(self._histograms.shape[1])

    @property
    def frame_number(self) -> int:
        """Current frame number."""
        return self._frame_number

    @property
    def pixel_position(self) -> int:
        """Current pixel position."""
        return self._pixel_position

    @property
    def valid(self) -> bool:
        """Whether the frame is valid."""
        return self._valid

    def getFrameNumber(self) -> int:
        """Frame number from 0; -1 for an invalid frame."""
        return self.frame_number

    def isValid(self) -> bool:
        """False when no such frame exists (e.g. no frame completed yet)."""
        return self.valid

    def getPixelPosition(self) -> int:
        """How many pixels of this frame were processed."""
        return self.pixel_position

    def getHistograms(self) -> np.ndarray:
        """Histograms, shape (n_pixels, n_bins)."""
        return self._histograms.copy()

    def getIntensities(self) -> np.ndarray:
        """Summed counts of each pixel divided by its integration time (counts per ps)."""
        return _intensity(self.getSummedCounts(), self._begins, self._ends)

    def getSummedCounts(self) -> np.ndarray:
        """Summed counts of each pixel."""
        return self._histograms.sum(axis=1, dtype=np.uint64)

    def getPixelBegins(self) -> np.ndarray:
        """Begin time of each pixel in ps."""
        return self._begins.copy()

    def getPixelEnds(self) -> np.ndarray:
        """End time of each pixel in ps."""
        return self._ends.copy()


class FlimAbstract(IteratorBase):
    """Common part of the FLIM measurements: marker handling, click binning, frame completion."""

    def __init__(self, tagger: TimeTaggerBase, start_channel: int, click_channel: int, pixel_begin_channel: int,
                 n_pixels: int, n_bins: int, binwidth: int, pixel_end_channel: int = CHANNEL_UNUSED,
                 frame_begin_channel: int = CHANNEL_UNUSED, finish_after_outputframe: int = 0,
                 n_frame_average: int = 1, pre_initialize: bool = True):
        self._n_pixels = positive("n_pixels", n_pixels)
        self._n_bins = positive("n_bins", n_bins)
        self._binwidth = positive("binwidth", binwidth)
        self._n_frame_average = positive("n_frame_average", n_frame_average)
        self._finish_after = int(finish_after_outputframe)
        if self._finish_after < 0:
            raise ValueError(f"finish_after_outputframe must be >= 0, got {finish_after_outputframe}")
        self._has_end = int(pixel_end_channel) != CHANNEL_UNUSED
        self._has_frame = int(frame_begin_channel) != CHANNEL_UNUSED
        channels = [start_channel, click_channel, pixel_begin_channel]
        channels += [pixel_end_channel] if self._has_end else []
        channels += [frame_begin_channel] if self._has_frame else []
        self._starts_running = bool(pre_initialize)
        self._reset_state()
        super().__init__(tagger, channels)

    def _describe(self) -> dict[str, Any]:
        return {"n_pixels": self._n_pixels, "n_bins": self._n_bins, "binwidth": self._binwidth,
                "n_frame_average": self._n_frame_average, "finish_after_outputframe": self._finish_after}

    def _reset_state(self) -> None:
        shape = (self._n_pixels, self._n_bins)
        self._frame = np.zeros(shape, dtype=np.int64)  # the frame being acquired (input frame)
        self._begins = np.zeros(self._n_pixels, dtype=np.int64)
        self._ends = np.zeros(self._n_pixels, dtype=np.int64)
        self._pixel = 0  # index of the open (or next) pixel
        self._open_since: int | None = None  # begin time of the open pixel
        self._last_start: int | None = None
        self._average = np.zeros(shape, dtype=np.int64)  # input frames summed into the next output frame
        self._averaged = 0
        self._average_begins = np.zeros(self._n_pixels, dtype=np.int64)
        self._output_frames = 0
        self._acquiring = True

    def _on_clear(self) -> None:
        self._reset_state()
        self._clear_outputs()

    def _clear_outputs(self) -> None:
        """Subclasses drop their stored frames here."""

    def initialize(self) -> None:
        """Start a measurement made with ``pre_initialize=False`` (a no-op otherwise); as at construction,
        a measurement of a SynchronizedMeasurements group waits for the group's start instead."""
        if not self._starts_running:
            self._starts_running = True
            if getattr(self._tagger, "_autostart", True):
                self.start()

    def isAcquiring(self) -> bool:
        """False once ``finish_after_outputframe`` frames are acquired; then it cannot start again."""
        with self._lock:
            return self._acquiring

    def start(self) -> None:
        """Start or continue data acquisition (not after the last frame of ``finish_after_outputframe``)."""
        with self._lock:
            if not self._acquiring:
                return
        super().start()

    def frameReady(self, frame_number: int, data: np.ndarray, pixel_begin_times: np.ndarray,
                   pixel_end_times: np.ndarray, frame_begin_time: int, frame_end_time: int) -> None:
        """Called on the engine thread for every output frame; override it (must be fast)."""

    # -- engine side ------------------------------------------------------------
    def _on_chunk(self, chunk: Chunk) -> None:
        start_ch, click_ch, begin_ch = self._channels[:3]
        clicks, starts = chunk.get(click_ch), chunk.get(start_ch)
        kinds = [(begin_ch, _PIXEL_BEGIN)]
        if self._has_end:
            kinds.append((self._channels[3], _PIXEL_END))
        if self._has_frame:
            kinds.append((self._channels[-1], _FRAME_BEGIN))
        times = np.concatenate([chunk.get(ch) for ch, _ in kinds])
        codes = np.concatenate([np.full(chunk.get(ch).size, code, dtype=np.int8) for ch, code in kinds])
        order = np.lexsort((codes, times))
        bins = self._click_bins(clicks, starts)
        # Each marker closes a segment of clicks: those before it go to the pixel open until then.
        cut = np.searchsorted(clicks, times[order], side="left")
        done = 0
        for t, code, upto in zip(times[order].tolist(), codes[order].tolist(), cut.tolist(), strict=True):
            self._add_clicks(bins[done:upto])
            done = upto
            if code == _PIXEL_BEGIN:
                self._close_pixel(t)
                self._open_since = t
            elif code == _PIXEL_END:
                self._close_pixel(t)
            else:  # a frame begin ends the open pixel (which may complete the frame), then drops a partial frame
                self._close_pixel(t)
                if self._pixel:
                    self._frame[:] = 0
                    self._pixel = 0
            if not self._acquiring:
                return
        self._add_clicks(bins[done:])

    def _click_bins(self, clicks: np.ndarray, starts: np.ndarray) -> np.ndarray:
        """Histogram bin of each click (time since the latest start), -1 where it falls outside."""
        if self._last_start is not None:
            starts = np.concatenate([[self._last_start], starts])
        if starts.size:
            self._last_start = int(starts[-1])
        idx = np.searchsorted(starts, clicks, side="right") - 1
        bins = np.full(clicks.size, -1, dtype=np.int64)
        has = idx >= 0
        bins[has] = (clicks[has] - starts[idx[has]]) // self._binwidth
        bins[bins >= self._n_bins] = -1
        return bins

    def _add_clicks(self, bins: np.ndarray) -> None:
        if self._open_since is None or not bins.size:
            return
        bins = bins[bins >= 0]
        if bins.size:
            self._frame[self._pixel] += np.bincount(bins, minlength=self._n_bins)

    def _close_pixel(self, t: int) -> None:
        if self._open_since is None:
            return
        self._begins[self._pixel], self._ends[self._pixel] = self._open_since, t
        self._open_since = None
        self._pixel += 1
        if self._pixel == self._n_pixels:
            self._frame_done()

    def _frame_done(self) -> None:
        if self._averaged == 0:
            self._average_begins[:] = self._begins
        self._average += self._frame
        self._averaged += 1
        self._frame[:] = 0
        self._pixel = 0
        if self._averaged < self._n_frame_average:
            return
        number = self._output_frames
        data, begins, ends = self._average.astype(np.uint32), self._average_begins.copy(), self._ends.copy()
        self._average[:] = 0
        self._averaged = 0
        self._output_frames += 1
        self._store(number, data, begins, ends)
        self.frameReady(number, data.ravel(), begins, ends, int(begins[0]), int(ends[-1]))
        if self._finish_after and self._output_frames >= self._finish_after:
            self._acquiring = False
            self._running = False
            self._stop_at_ps = None
            self._finished.notify_all()

    def _store(self, number: int, data: np.ndarray, begins: np.ndarray, ends: np.ndarray) -> None:
        """Subclasses keep output frames here."""


class FlimBase(FlimAbstract):
    """The minimal FLIM measurement: it only calls ``frameReady`` for each frame; subclass and override it."""


class Flim(FlimAbstract):
    """FLIM with stored frames: the current, the ready ones, and their sum."""

    def _clear_outputs(self) -> None:
        self._ready: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]] = []
        self._summed = np.zeros((self._n_pixels, self._n_bins), dtype=np.int64)
        self._summed_begins = np.zeros(self._n_pixels, dtype=np.int64)
        self._summed_time = np.zeros(self._n_pixels, dtype=np.int64)

    def _reset_state(self) -> None:
        super()._reset_state()
        if not hasattr(self, "_ready"):
            self._clear_outputs()

    def _store(self, number: int, data: np.ndarray, begins: np.ndarray, ends: np.ndarray) -> None:
        self._ready.append((number, data, begins, ends))
        if len(self._ready) > max(self._finish_after, 1):
            del self._ready[0]
        if not self._summed_time.any():
            self._summed_begins[:] = begins
        self._summed += data
        self._summed_time += ends - begins

    def getIndex(self) -> np.ndarray:
        """Time of each histogram bin in ps (its start)."""
        return np.arange(self._n_bins, dtype=np.int64) * self._binwidth

    def getFramesAcquired(self) -> int:
        """Output frames completed since creation or the last clear."""
        with self._lock:
            return self._output_frames

    def _current(self) -> FlimFrameInfo:
        begins, ends = self._begins.copy(), self._ends.copy()
        begins[self._pixel:] = ends[self._pixel:] = 0
        if self._open_since is not None:
            begins[self._pixel] = ends[self._pixel] = self._open_since
        return FlimFrameInfo(self._frame, begins, ends, self._output_frames, self._pixel, True)

    def _ready_frame(self, index: int) -> FlimFrameInfo:
        index = int(index)
        if index != -1 and (self._finish_after == 0 or index >= self._finish_after or index < -1):
            raise ValueError(f"index must be -1 or in [0, finish_after_outputframe={self._finish_after}), "
                             f"got {index}")
        chosen = [f for f in self._ready if f[0] == index] if index >= 0 else self._ready[-1:]
        if not chosen:
            empty = np.zeros(self._n_pixels, dtype=np.int64)
            return FlimFrameInfo(np.zeros((self._n_pixels, self._n_bins)), empty, empty, -1, 0, False)
        number, data, begins, ends = chosen[0]
        return FlimFrameInfo(data, begins, ends, number, self._n_pixels, True)

    def _summed_frames(self, only_ready_frames: bool, clear_summed: bool) -> FlimFrameInfo:
        data, time_spent = self._summed.copy(), self._summed_time.copy()
        if not only_ready_frames:
            data += self._frame
            done = slice(0, self._pixel)
            time_spent[done] += self._ends[done] - self._begins[done]
        valid = bool(self._output_frames or not only_ready_frames)
        info = FlimFrameInfo(data, self._summed_begins, self._summed_begins + time_spent,
                             self._output_frames - 1, self._n_pixels, valid)
        if clear_summed:
            self._summed[:] = 0
            self._summed_time[:] = 0
        return info

    def getCurrentFrame(self) -> np.ndarray:
        """Histograms of the frame being acquired, shape (n_pixels, n_bins)."""
        with self._lock:
            return self._frame.astype(np.uint32)

    def getCurrentFrameEx(self) -> FlimFrameInfo:
        """The frame being acquired, with its pixel times."""
        with self._lock:
            return self._current()

    def getCurrentFrameIntensity(self) -> np.ndarray:
        """Intensity of each pixel of the frame being acquired (counts per ps; 0 for pixels not closed)."""
        with self._lock:
            return self._current().getIntensities()

    def getReadyFrame(self, index: int = -1) -> np.ndarray:
        """Histograms of a completed frame (-1: the latest), shape (n_pixels, n_bins)."""
        with self._lock:
            return self._ready_frame(index).getHistograms()

    def getReadyFrameEx(self, index: int = -1) -> FlimFrameInfo:
        """A completed frame (-1: the latest) with its pixel times; invalid if there is none yet."""
        with self._lock:
            return self._ready_frame(index)

    def getReadyFrameIntensity(self, index: int = -1) -> np.ndarray:
        """Intensity of each pixel of a completed frame (counts per ps)."""
        with self._lock:
            return self._ready_frame(index).getIntensities()

    def getSummedFrames(self, only_ready_frames: bool = True, clear_summed: bool = False) -> np.ndarray:
        """Histograms summed over all frames since start or clear; optionally with the current one."""
        with self._lock:
            return self._summed_frames(only_ready_frames, clear_summed).getHistograms()

    def getSummedFramesEx(self, only_ready_frames: bool = True, clear_summed: bool = False) -> FlimFrameInfo:
        """The summed frames with the summed pixel integration times."""
        with self._lock:
            return self._summed_frames(only_ready_frames, clear_summed)

    def getSummedFramesIntensity(self, only_ready_frames: bool = True, clear_summed: bool = False) -> np.ndarray:
        """Intensity of each pixel over all frames: summed counts over summed pixel time (counts per ps)."""
        with self._lock:
            return self._summed_frames(only_ready_frames, clear_summed).getIntensities()
