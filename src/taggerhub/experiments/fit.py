"""Least-squares fit of a Gaussian peak on a flat baseline, with numpy only (Levenberg-Marquardt)."""

from __future__ import annotations

import numpy as np


def gaussian(x: np.ndarray, baseline: float, amplitude: float, center: float, sigma: float) -> np.ndarray:
    return baseline + amplitude * np.exp(-0.5 * ((x - center) / sigma) ** 2)


def fit_gaussian(x: np.ndarray, y: np.ndarray, iterations: int = 100) -> dict[str, float]:
    """Fit ``baseline + amplitude*exp(-(x-center)^2/(2 sigma^2))``; return the parameters and their errors.

    Starts from the moments around the maximum, so one clear peak is enough.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    ok = np.isfinite(y)
    x, y = x[ok], y[ok]
    if x.size < 5 or not np.any(y > np.median(y)):
        raise ValueError("no peak to fit (too few points or a flat curve)")
    baseline = float(np.median(y))
    signal = np.clip(y - baseline, 0, None)
    peak = int(np.argmax(signal))
    amplitude = float(signal[peak])
    above = x[signal > amplitude / 2]
    sigma = max(float(above.max() - above.min()) / 2.355, float(np.min(np.diff(x))) / 2)
    p = np.array([baseline, amplitude, float(x[peak]), sigma])
    damping = 1e-3
    cost = _cost(x, y, p)
    for _ in range(iterations):
        jac = _jacobian(x, p)
        residual = y - gaussian(x, *p)
        jtj = jac.T @ jac
        step = np.linalg.solve(jtj + damping * np.diag(np.diag(jtj)), jac.T @ residual)
        trial = p + step
        trial[3] = abs(trial[3])
        trial_cost = _cost(x, y, trial)
        if trial_cost < cost:
            converged = cost - trial_cost < 1e-12 * cost
            p, cost, damping = trial, trial_cost, damping / 3
            if converged:
                break
        else:
            damping *= 4
            if damping > 1e12:
                break
    jac = _jacobian(x, p)
    dof = max(1, x.size - 4)
    with np.errstate(divide="ignore", invalid="ignore"):
        covariance = np.linalg.pinv(jac.T @ jac) * (cost / dof)
    errors = np.sqrt(np.clip(np.diag(covariance), 0, None))
    names = ("baseline", "amplitude", "center", "sigma")
    result = {name: float(v) for name, v in zip(names, p, strict=True)}
    result.update({f"{name}_err": float(e) for name, e in zip(names, errors, strict=True)})
    result["reduced_chi2"] = float(cost / dof)
    return result


def _cost(x: np.ndarray, y: np.ndarray, p: np.ndarray) -> float:
    return float(np.sum((y - gaussian(x, *p)) ** 2))


def _jacobian(x: np.ndarray, p: np.ndarray) -> np.ndarray:
    _, amplitude, center, sigma = p
    u = (x - center) / sigma
    g = np.exp(-0.5 * u**2)
    return np.column_stack([np.ones_like(x), g, amplitude * g * u / sigma, amplitude * g * u**2 / sigma])
