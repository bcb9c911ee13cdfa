"""The physics core shared by every stage: cosmology, linear power, growth, fields and LPT, painting, statistics.

All array functions take and return :mod:`torch` tensors, run on CPU or CUDA, in float32 or float64, and are
differentiable where the training losses need them (painting, readout, power spectra).

Conventions (see ``shared/DESIGN.md``):

* Lengths are comoving Mpc/h, wavenumbers h/Mpc, power spectra (Mpc/h)^3, velocities peculiar km/s.
* Meshes are cubic, ``n`` cells a side, periodic; cell ``i`` spans
  ``[i*L/n, (i+1)*L/n)`` and mesh values are sampled at the cell corner ``x_i = i*L/n`` (the nbodykit / FastPM
  convention), so a particle at ``x_i`` lands entirely on mesh point ``i`` under NGP and CIC (TSC spreads
  1/8, 3/4, 1/8 per axis).
* Fourier transforms are ``torch.fft.rfftn`` with no normalisation on the forward transform:
  ``delta_k = sum_x delta(x) exp(-i k.x)``; the power spectrum estimator is ``P(k) = V / n^6 |delta_k|^2``.
"""
