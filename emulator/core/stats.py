"""All summary statistics of periodic meshes, re-exported from the modules that implement them.

This module holds no code; import from here for convenience, or from the implementing module:

* :mod:`emulator.core.spectra`: binned auto and cross power spectra ``P(k)`` ((Mpc/h)^3, ``k`` in h/Mpc),
  the cross-correlation coefficient ``r(k)`` and the wavenumber binning :func:`k_edges`.
* :mod:`emulator.core.correlation`: the two-point correlation function ``xi(r)`` (``r`` in Mpc/h) from the
  inverse FFT of ``|delta_k|^2``.
* :mod:`emulator.core.bispectrum`: the FFT shell bispectrum ``B`` ((Mpc/h)^6) and reduced bispectrum ``Q``.
* :mod:`emulator.core.onepoint`: smoothing, the one-point PDF, the halo mass function and covariance matrices
  over realizations.

Modules of :mod:`emulator.core` import the implementing modules, never this one.
"""

from __future__ import annotations

from .bispectrum import bispectrum, bispectrum_equilateral, bispectrum_triangles
from .correlation import correlation_function
from .onepoint import covariance, density_pdf, hartlap_factor, mass_function, smooth_field
from .spectra import PowerResult, PowerSpectrum, cross_correlation, k_edges, power_spectrum, power_spectrum_k

__all__ = [
    "PowerSpectrum",
    "PowerResult",
    "power_spectrum",
    "power_spectrum_k",
    "cross_correlation",
    "correlation_function",
    "k_edges",
    "bispectrum",
    "bispectrum_equilateral",
    "bispectrum_triangles",
    "density_pdf",
    "smooth_field",
    "mass_function",
    "covariance",
    "hartlap_factor",
]
