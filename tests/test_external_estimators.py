"""Our P(k) estimator against an external code, so the benchmark does not grade itself with its own ruler alone.

Pylians (``pip install Pylians``; skipped without it): the same 2LPT particles CIC-painted by
``MAS_library.MA`` and measured by ``Pk_library.Pk`` (window-deconvolved, bins ``[j, j + 1) k_F``) against our
:func:`emulator.core.mesh.paint`, :func:`emulator.core.window.compensate` and
:func:`emulator.core.spectra.power_spectrum_k` with the same bins. Below the Nyquist frequency the two agree to the
float32 precision of Pylians' mesh (the modes on the Nyquist planes are split differently by the two codes).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

MASL = pytest.importorskip("MAS_library")
PKL = pytest.importorskip("Pk_library")

from emulator.core.cosmology import get_preset  # noqa: E402
from emulator.core.fourier import to_fourier  # noqa: E402
from emulator.core.mesh import paint  # noqa: E402
from emulator.core.spectra import power_spectrum_k  # noqa: E402
from emulator.core.window import compensate  # noqa: E402
from emulator.model.emulate import emulate_fields  # noqa: E402


@pytest.mark.parametrize("box, n, z", [(128.0, 64, 0.0), (256.0, 32, 1.0)])
def test_power_spectrum_matches_pylians(box, n, z):
    pos = emulate_fields(get_preset("planck18"), z, box, 3, method="2lpt", ngrid=n).positions.double()
    delta = np.zeros((n, n, n), dtype=np.float32)
    MASL.MA(pos.numpy().astype(np.float32), delta, box, "CIC", verbose=False)
    delta /= delta.mean()
    delta -= 1.0
    ref = PKL.Pk(delta, box, 0, "CIC", 1, verbose=False)

    fk = compensate(to_fourier(paint(pos, n, box, window="cic")), "cic")
    fk = fk * (n**3 / fk[0, 0, 0].real)
    fk[0, 0, 0] = 0.0
    kf = 2 * np.pi / box
    edges = (np.arange(1, int(np.sqrt(3) * n / 2) + 2) - 1e-9) * kf  # [j, j+1) k_F; integer |k| goes up, as theirs
    ours = power_spectrum_k(fk, box, n, kedges=torch.tensor(edges))
    m = min(len(ref.k3D), ours.k.numel())
    k, p = ours.k.numpy()[:m], ours.power.numpy()[:m]
    below = k < (n // 2) * kf  # below the Nyquist frequency
    assert below.sum() >= n // 2 - 2
    np.testing.assert_allclose(k[below], ref.k3D[:m][below], rtol=1e-5)
    np.testing.assert_allclose(p[below], ref.Pk[:m, 0][below], rtol=2e-4)
