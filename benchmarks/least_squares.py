"""Linear least squares with standard errors: the fits of the benchmarks' cosmology trends (halo-count slopes,
PGD strengths, halo-mass ratios) share this one estimator."""

from __future__ import annotations

import numpy as np

__all__ = ["linear_fit"]


def linear_fit(columns, y, weights=None) -> tuple[np.ndarray, np.ndarray]:
    """``(coef, se)`` of ``y = c_0 + sum_j c_j x_j`` by (weighted) least squares.

    Parameters
    ----------
    columns : sequence of array_like
        The regressors ``x_j``, each ``(n,)``; an intercept is added as ``coef[0]``.
    y : array_like
        ``(n,)`` values.
    weights : array_like, optional
        ``(n,)`` weights (inverse variances up to a common factor); uniform without.

    Returns
    -------
    coef, se : np.ndarray
        ``(1 + len(columns),)`` coefficients and standard errors from the residual scatter,
        ``sum w r^2 / (n - p) (X^T W X)^-1``.
    """
    y = np.asarray(y, dtype=np.float64)
    x = np.stack([np.ones_like(y)] + [np.asarray(c, dtype=np.float64) for c in columns], axis=1)
    w = np.ones_like(y) if weights is None else np.asarray(weights, dtype=np.float64)
    if len(y) <= x.shape[1]:
        raise ValueError(f"a linear fit of {x.shape[1]} coefficients needs more than {x.shape[1]} points, got {len(y)}")
    sw = np.sqrt(w)[:, None]
    coef, *_ = np.linalg.lstsq(x * sw, y * sw[:, 0], rcond=None)
    resid = y - x @ coef
    cov = np.sum(w * resid**2) / (len(y) - x.shape[1]) * np.linalg.inv((x * sw).T @ (x * sw))
    return coef, np.sqrt(np.diag(cov))
