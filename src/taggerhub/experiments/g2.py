"""The example plugin: second-order correlation g2(tau) between two channels, normalised and fitted.

A Correlation and a Countrate run in one SynchronizedMeasurements group, so
they see the same tags. With H(tau) the coincidences per bin, T the capture
time, N1 and N2 the singles counts and w the bin width,
``g2(tau) = H(tau) * T / (N1 * N2 * w)``: 1 for uncorrelated light. A Gaussian
on a flat baseline fitted to the peak gives its centre, width and height.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

from . import Experiment
from .fit import fit_gaussian


class G2(Experiment):
    """g2(tau) of ``channel_start`` against ``channel_stop`` (tau = t_stop - t_start), with a Gaussian fit.

    Parameters: channel_start=1, channel_stop=2, binwidth_ps=10, n_bins=2000, fit_window_ps=1000
    (half-width of the fitted region around the highest bin).
    """

    name = "g2"

    def __init__(self, backend: ModuleType, tagger: Any, channel_start: int = 1, channel_stop: int = 2,
                 binwidth_ps: int = 10, n_bins: int = 2000, fit_window_ps: int = 1000):
        super().__init__(backend, tagger)
        if int(binwidth_ps) <= 0 or int(n_bins) < 10:
            raise ValueError(f"g2 needs binwidth_ps > 0 and n_bins >= 10, got {binwidth_ps} and {n_bins}")
        if int(channel_start) == int(channel_stop):
            raise ValueError("g2 needs two different channels (channel_start == channel_stop)")
        self._config = {"channel_start": int(channel_start), "channel_stop": int(channel_stop),
                        "binwidth_ps": int(binwidth_ps), "n_bins": int(n_bins), "fit_window_ps": int(fit_window_ps)}
        self._sync = backend.SynchronizedMeasurements(tagger)
        group_tagger = self._sync.getTagger()
        # Correlation histograms t(channel_1) - t(channel_2): stop first, so tau = t_stop - t_start.
        self._corr = self.measurement("Correlation", int(channel_stop), int(channel_start),
                                      binwidth=int(binwidth_ps), n_bins=int(n_bins), tagger=group_tagger)
        self._rates = self.measurement("Countrate", [int(channel_start), int(channel_stop)], tagger=group_tagger)

    def getParameters(self) -> dict[str, int]:
        """The parameters this experiment was created with."""
        return dict(self._config)

    def start(self) -> None:
        """Acquire until stop()."""
        self._sync.start()

    def startFor(self, capture_duration_ps: int, clear: bool = True) -> None:
        """Acquire for ``capture_duration_ps`` picoseconds of tag time."""
        self._sync.startFor(int(capture_duration_ps), clear)

    def stop(self) -> None:
        self._sync.stop()

    def clear(self) -> None:
        self._sync.clear()

    def isRunning(self) -> bool:
        return bool(self._sync.isRunning())

    def waitUntilFinished(self, timeout_ms: int = -1) -> bool:
        """Wait (bounded by ``timeout_ms``, -1 forever) for a startFor to end."""
        return bool(self._sync.waitUntilFinished(int(timeout_ms)))

    def getResult(self) -> dict[str, Any]:
        """tau_ps, g2, counts, singles rates, capture time and the fit of the peak (None if no peak)."""
        counts = np.asarray(self._corr.getData(), dtype=np.int64)
        tau = np.asarray(self._corr.getIndex(), dtype=np.int64)
        capture_ps = int(self._corr.getCaptureDuration())
        singles = np.asarray(self._rates.getCountsTotal(), dtype=np.int64)
        n_start, n_stop = (int(n) for n in singles)
        binwidth = self._config["binwidth_ps"]
        if capture_ps > 0 and n_start > 0 and n_stop > 0:
            g2 = counts * (capture_ps / (binwidth * n_start * n_stop))
        else:
            g2 = np.full(counts.shape, np.nan)
        seconds = capture_ps * 1e-12
        return {
            "tau_ps": tau,
            "g2": g2,
            "counts": counts,
            "capture_ps": capture_ps,
            "singles": [n_start, n_stop],
            "rates_hz": [n_start / seconds if seconds else 0.0, n_stop / seconds if seconds else 0.0],
            "fit": self._fit(tau, g2),
        }

    def _fit(self, tau: np.ndarray, g2: np.ndarray) -> dict[str, float] | None:
        if not np.any(np.isfinite(g2)) or not np.nanmax(g2) > 0:
            return None
        top = int(np.nanargmax(g2))
        near = np.abs(tau - tau[top]) <= self._config["fit_window_ps"]
        try:
            p = fit_gaussian(tau[near], g2[near])
        except (ValueError, np.linalg.LinAlgError):
            return None
        # The baseline of a narrow window is poorly known where accidentals are rare: take it from
        # the whole curve away from the peak (1 for a correctly normalised uncorrelated background).
        far = np.abs(tau - p["center"]) > 10 * max(p["sigma"], self._config["binwidth_ps"])
        background = float(np.nanmean(g2[far])) if np.any(far) else p["baseline"]
        peak = p["baseline"] + p["amplitude"]
        return {
            "center_ps": p["center"], "center_err_ps": p["center_err"],
            "sigma_ps": p["sigma"], "sigma_err_ps": p["sigma_err"],
            "fwhm_ps": float(2.0 * np.sqrt(2.0 * np.log(2.0)) * p["sigma"]),
            "peak_g2": peak, "amplitude": p["amplitude"], "amplitude_err": p["amplitude_err"],
            "baseline": p["baseline"], "background_g2": background,
            "contrast": peak / background if background > 0 else float("inf"),
            "reduced_chi2": p["reduced_chi2"],
        }
