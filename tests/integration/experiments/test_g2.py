"""The g2 plugin on the simulator (virtual clock): its numbers against what the pair source implies."""

from __future__ import annotations

import math

import numpy as np
import pytest

import taggerhub.sim as TT  # noqa: N812 - the vendor module's usual alias
from taggerhub.experiments.fit import fit_gaussian, gaussian
from taggerhub.experiments.g2 import G2
from taggerhub.sim.lab import DeviceSpec
from taggerhub.sim.models import model_by_name
from taggerhub.sim.signals import PhotonPairSource, PoissonSource

SECOND = 10**12
ULTRA_JITTER_PS = model_by_name("ultra").jitter_rms_ps


@pytest.fixture
def tagger_with():
    opened = []

    def make(sources, seed=7):
        spec = model_by_name("ultra")
        TT.configure(devices=[DeviceSpec(serial="2138G2TEST", model=spec, sources=sources)], clock="virtual",
                     seed=seed)
        opened.append(TT.createTimeTagger())
        return opened[-1]

    yield make
    for tagger in opened:
        TT.freeTimeTagger(tagger)
    TT.configure()


def run(experiment: G2, duration_ps: int) -> dict:
    experiment.startFor(duration_ps)
    assert experiment.waitUntilFinished(60_000), "g2 did not finish within 60 s"
    return experiment.getResult()


@pytest.mark.parametrize(("delay_ps", "jitter_a", "jitter_b", "efficiency"), [
    (2500, 30.0, 30.0, 0.25),  # the default lab's pair source
    (-1200, 60.0, 20.0, 0.1),  # negative delay, unequal arms
])
def test_g2_peak_matches_the_configured_pair_source(tagger_with, delay_ps, jitter_a, jitter_b, efficiency):
    pair_rate, dark_a, dark_b = 2e5, 200.0, 150.0
    pairs = PhotonPairSource(channel_a=1, channel_b=2, pair_rate_hz=pair_rate, delay_ps=delay_ps,
                             efficiency_a=efficiency, efficiency_b=efficiency, jitter_a_ps=jitter_a,
                             jitter_b_ps=jitter_b)
    tagger = tagger_with([pairs, PoissonSource(channel=1, rate_hz=dark_a), PoissonSource(channel=2, rate_hz=dark_b)])
    result = run(G2(TT, tagger, channel_start=1, channel_stop=2, binwidth_ps=10, n_bins=2000), SECOND)

    # The source implies: singles r = R*eta + dark; coincidences R*eta_a*eta_b spread as a Gaussian of
    # sigma = sqrt(ja^2 + jb^2 + 2 jt^2) (both arms plus the tagger's jitter on each channel); accidentals
    # per bin r_a*r_b*T*w. So g2 = H*T/(N1*N2*w) peaks at 1 + R*eta_a*eta_b / (r_a*r_b*sqrt(2 pi)*sigma).
    rate_a, rate_b = pair_rate * efficiency + dark_a, pair_rate * efficiency + dark_b
    sigma = math.sqrt(jitter_a**2 + jitter_b**2 + 2 * ULTRA_JITTER_PS**2)
    peak = 1 + pair_rate * efficiency**2 / (rate_a * rate_b * math.sqrt(2 * math.pi) * sigma * 1e-12)
    fit = result["fit"]
    assert abs(fit["center_ps"] - delay_ps) < 3
    assert abs(fit["sigma_ps"] - sigma) / sigma < 0.05
    assert abs(fit["peak_g2"] - peak) / peak < 0.05
    assert result["capture_ps"] == SECOND
    assert np.allclose(result["rates_hz"], [rate_a, rate_b], rtol=0.02)
    tau, g2 = result["tau_ps"], result["g2"]
    assert tau.shape == g2.shape == (2000,) and result["counts"].sum() > 0
    assert abs(tau[np.argmax(g2)] - delay_ps) <= 30


def test_g2_of_uncorrelated_light_is_flat_at_one(tagger_with):
    tagger = tagger_with([PoissonSource(channel=1, rate_hz=4e5), PoissonSource(channel=2, rate_hz=3e5)])
    result = run(G2(TT, tagger, binwidth_ps=1000, n_bins=200), SECOND // 2)
    assert abs(float(np.mean(result["g2"])) - 1.0) < 0.02
    assert result["fit"] is None or result["fit"]["contrast"] < 1.3  # nothing that looks like a real peak


def test_g2_before_any_data_has_no_fit_and_nan_curve(tagger_with):
    result = G2(TT, tagger_with([PoissonSource(channel=1, rate_hz=1e3)])).getResult()
    assert result["capture_ps"] == 0 and result["fit"] is None and np.isnan(result["g2"]).all()


@pytest.mark.parametrize(("params", "message"), [
    ({"binwidth_ps": 0}, "binwidth_ps > 0"),
    ({"channel_start": 3, "channel_stop": 3}, "two different channels"),
])
def test_g2_rejects_bad_parameters_by_name(tagger_with, params, message):
    with pytest.raises(ValueError, match=message):
        G2(TT, tagger_with([]), **params)


def test_close_detaches_the_measurements_it_created(tagger_with):
    tagger = tagger_with([PoissonSource(channel=1, rate_hz=1e4)])
    experiment = G2(TT, tagger)
    experiment.start()
    assert experiment.isRunning()
    experiment.close()
    assert not experiment.isRunning()


def test_gaussian_fit_recovers_known_parameters_from_noisy_data():
    rng = np.random.default_rng(3)
    x = np.arange(-500, 500, 5.0)
    y = gaussian(x, 2.0, 40.0, 37.0, 55.0) + rng.normal(0, 0.5, x.size)
    p = fit_gaussian(x, y)
    assert abs(p["center"] - 37.0) < 1 and abs(p["sigma"] - 55.0) < 1.5
    assert abs(p["amplitude"] - 40.0) < 1 and abs(p["baseline"] - 2.0) < 0.2
    assert 0 < p["center_err"] < 1


def test_gaussian_fit_refuses_a_flat_curve():
    with pytest.raises(ValueError, match="no peak"):
        fit_gaussian(np.arange(20.0), np.ones(20))
