"""The conditioning ("style") vector of the network: five cosmological parameters and the redshift.

The normalisation belongs to the model: a model file stores the bounds it was trained over (``style_low``,
``style_high``: the training prior of ``Omega_m, Omega_b, h, n_s, sigma8``, then the redshift range), and both
training and generation map a (cosmology, redshift) to the network's input with the same function.
"""

from __future__ import annotations

import numpy as np

__all__ = ["normalise_style"]


def normalise_style(params, redshift, low, high) -> np.ndarray:
    """Map (five parameters, redshift) to [-1, 1] over ``[low, high]``; a degenerate range maps to 0."""
    x = np.array([*params, redshift], dtype=np.float64)
    low = np.asarray(low, dtype=np.float64)
    high = np.asarray(high, dtype=np.float64)
    width = high - low
    safe = np.where(width > 0, width, 1.0)
    return np.where(width > 0, 2.0 * (x - low) / safe - 1.0, 0.0)
