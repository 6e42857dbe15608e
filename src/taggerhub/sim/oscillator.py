"""``Experimental.OscillatorSimulation``: a clock whose edges carry the classic oscillator noise types.

Coefficients as the vendor's docstring defines them (x: time error of an
edge, y: fractional frequency error, T: the nominal period, all in seconds):

* ``coeff_phase_white`` (s): every edge independently off by N(0, c²) (white PM);
* ``coeff_freq_white`` (sqrt(s)): x a random walk, ``Var[x(t + tau) - x(t)] = c² tau``
  (white FM; Allan deviation ``c / sqrt(tau)``, ``L(f) = (f0 c / f)²``);
* ``coeff_random_drift`` (sqrt(Hz)): y a random walk, ``Var[y(t + tau) - y(t)] = c² tau``
  (random-walk FM; Allan deviation ``c sqrt(tau / 3)``);
* ``coeff_linear_drift`` (1/s): y grows by c per second from the oscillator's start (aging).

Edges are generated in order, batch by batch, so the random walks continue
across chunks; an edge is handed out in the chunk its actual time falls in. The
flicker terms (``coeff_phase_flicker``, ``coeff_freq_flicker``) are refused with
NotImplementedError: a 1/f process needs a long-memory generator the simulator
does not have.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .engine import Chunk
from .enums import CHANNEL_UNUSED
from .signals import PS_PER_S
from .virtual import EMPTY, VirtualChannelBase

if TYPE_CHECKING:
    from .tagger import TimeTaggerBase

BATCH = 1 << 16  # edges generated per step of the random walks


class OscillatorSimulation(VirtualChannelBase):
    """A simulated oscillator at ``nominal_frequency`` Hz with white PM, white FM, random-walk FM and drift."""

    def __init__(self, tagger: TimeTaggerBase, nominal_frequency: float, coeff_phase_white: float = 0.0,
                 coeff_phase_flicker: float = 0.0, coeff_freq_white: float = 0.0, coeff_freq_flicker: float = 0.0,
                 coeff_random_drift: float = 0.0, coeff_linear_drift: float = 0.0,
                 base_channel: int = CHANNEL_UNUSED, seed: int = -1):
        frequency = float(nominal_frequency)
        if not 0 < frequency <= 1e11 or not np.isfinite(frequency):
            raise ValueError(f"nominal_frequency must be a positive frequency in Hz up to 100 GHz, got {frequency}")
        coefficients = {"coeff_phase_white": coeff_phase_white, "coeff_phase_flicker": coeff_phase_flicker,
                        "coeff_freq_white": coeff_freq_white, "coeff_freq_flicker": coeff_freq_flicker,
                        "coeff_random_drift": coeff_random_drift, "coeff_linear_drift": coeff_linear_drift}
        for name, value in coefficients.items():
            if not np.isfinite(float(value)) or (name != "coeff_linear_drift" and float(value) < 0):
                raise ValueError(f"{name} must be a finite{' non-negative' if name != 'coeff_linear_drift' else ''} "
                                 f"number, got {value}")
        flicker = [name for name in ("coeff_phase_flicker", "coeff_freq_flicker") if float(coefficients[name])]
        if flicker:
            raise NotImplementedError(
                f"{', '.join(flicker)}: flicker noise is not simulated (no 1/f generator); the vendor's "
                "Experimental.OscillatorSimulation documents it. White PM, white FM, random-walk FM and linear "
                "drift are.")
        self._frequency = frequency
        self._period_s = 1.0 / frequency
        period_ps = PS_PER_S / frequency
        self._period_int = int(period_ps)  # n * T exactly for n up to ~1e13 edges: integer part plus fraction
        self._period_frac = period_ps - self._period_int
        self._white_phase = float(coeff_phase_white)
        self._white_freq = float(coeff_freq_white)
        self._random_drift = float(coeff_random_drift)
        self._linear_drift = float(coeff_linear_drift)
        seed = int(seed)
        self._rand = np.random.default_rng(int(tagger._stage.rng.integers(0, 2**63 - 1)) if seed < 0 else seed)
        self._base = None if int(base_channel) == CHANNEL_UNUSED else tagger._check_channel(base_channel)
        self._origin: int | None = None  # ps of edge 0
        self._reset_walks()
        super().__init__(tagger, [], outputs=[self._base] if self._base is not None else None)

    def _reset_walks(self) -> None:
        self._next_edge = 0
        self._x_white_freq = 0.0  # s
        self._y_random = 0.0
        self._x_random = 0.0  # s
        self._pending = EMPTY  # generated edges not yet handed out (at or after the last chunk's end)

    def _describe(self) -> dict[str, Any]:
        return {"nominal_frequency": self._frequency}

    def _batch(self) -> np.ndarray:
        """The next ``BATCH`` edges in ps, continuing every random walk."""
        n = self._next_edge + np.arange(BATCH, dtype=np.int64)
        ideal_s = n * self._period_s
        x = np.zeros(BATCH)
        if self._white_freq:
            steps = self._rand.normal(0.0, self._white_freq * np.sqrt(self._period_s), BATCH)
            walk = self._x_white_freq + np.cumsum(steps)
            self._x_white_freq = float(walk[-1])
            x += walk
        if self._random_drift:
            y = self._y_random + np.cumsum(self._rand.normal(0.0, self._random_drift * np.sqrt(self._period_s),
                                                             BATCH))
            walk = self._x_random + np.cumsum(y) * self._period_s
            self._y_random, self._x_random = float(y[-1]), float(walk[-1])
            x += walk
        if self._linear_drift:
            x += 0.5 * self._linear_drift * ideal_s**2
        # A fast oscillator (x > 0: it has gained time) has its edges early.
        offset_ps = -x * PS_PER_S
        if self._white_phase:
            offset_ps += self._rand.normal(0.0, self._white_phase * PS_PER_S, BATCH)
        self._next_edge += BATCH
        assert self._origin is not None
        times = self._origin + n * self._period_int + np.rint(n * self._period_frac + offset_ps).astype(np.int64)
        return np.sort(times)

    def _on_chunk(self, chunk: Chunk) -> None:
        if self._origin is None:
            self._origin = chunk.begin_ps
        if not self._pending.size or self._pending[-1] < chunk.begin_ps:
            # After a pause (stopped, or no measurement asked for tags), go on at the edge now due rather than
            # generating every edge missed: the random walks continue from where they were.
            due = int((chunk.begin_ps - self._origin) / (self._period_int + self._period_frac)) - 2
            if due > self._next_edge + BATCH:
                self._next_edge, self._pending = due, EMPTY
        parts = [self._pending[np.searchsorted(self._pending, chunk.begin_ps):]]
        for _ in range(100_000):  # bounded: each batch reaches BATCH periods further
            if parts[-1].size and parts[-1][-1] >= chunk.end_ps:
                break
            parts.append(self._batch())
        edges = np.concatenate(parts)
        cut = int(np.searchsorted(edges, chunk.end_ps, side="left"))
        self._pending = edges[cut:]
        self._emit(chunk, self._outputs[0], edges[:cut])

    def _on_clear(self) -> None:
        """The oscillator runs on: clear() resets a measurement's data, not a signal source."""
