"""Where a model is worse than its card's headline: a warning near the hull's (Omega_m, sigma8) corners.

Emulators are least accurate at the corners of their training hull (high sigma8 with low Omega_m above all), and a
test suite's worst case does not say where it is. A model card (:mod:`emulator.model.card`) records, per graded
cosmology, the worst ``|P/P_t - 1|`` and ``1 - r``; :func:`corner_warning` turns them into one line for a request
near a corner where the measurement there is beyond the P(k) target and worse than anywhere away from the corners.
Pure Python (no numpy, no torch), like the card module, so that it costs nothing at start-up.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["CORNER_FRACTION", "CornerWarning", "corner_warning"]

#: a point is near a corner when ``abs(2 (x - centre) / (high - low))`` reaches this in Omega_m and in sigma8: within
#: the outer 1/8 of each parameter's range (Omega_m <= 0.26 or >= 0.38, sigma8 <= 0.725 or >= 0.875 for the hull
#: [0.24, 0.40] x [0.70, 0.90])
CORNER_FRACTION = 0.75
NAMES = ("Omega_m", "sigma8")


class CornerWarning(NamedTuple):
    """A warning of :func:`corner_warning`: which corner (``("low" | "high", "low" | "high")`` in Omega_m, sigma8),
    the graded redshift it quotes, and the line."""

    corner: tuple[str, str]
    redshift: float
    text: str


def _unit(hull: dict, name: str, value: float) -> float:
    """``value`` of parameter ``name`` in units of the hull's half-width from its centre (-1 and 1: the faces; the
    mapping of :func:`emulator.model.style.normalise_style`, written without numpy)."""
    lo, hi = hull[name]
    return 0.0 if hi <= lo else 2.0 * (float(value) - (lo + hi) / 2.0) / (hi - lo)


def _corner(hull: dict, point: dict) -> tuple[int, int] | None:
    """The signs of ``point``'s corner in (Omega_m, sigma8), or ``None`` when it is not near one."""
    u = [_unit(hull, n, point[n]) for n in NAMES]
    return None if min(abs(x) for x in u) < CORNER_FRACTION else (1 if u[0] > 0 else -1, 1 if u[1] > 0 else -1)


def _graded_redshifts(entries: list[dict], redshift: float) -> list[float]:
    """The graded redshifts that bracket ``redshift`` (the nearest one beyond the graded range)."""
    zs = sorted({float(e["redshift"]) for e in entries})
    below, above = [z for z in zs if z <= redshift], [z for z in zs if z >= redshift]
    return sorted({*(below[-1:]), *(above[:1])})


def _worst_at(card: dict, hull: dict, corner: tuple[int, int], z: float):
    """At graded redshift ``z``: the worst measured cosmology in ``corner`` with its entry and P(k) target, and the
    worst ``|P/P_t - 1|`` of the cosmologies near no corner."""
    worst, elsewhere = None, 0.0
    for e in (e for e in card["entries"] if float(e["redshift"]) == z):
        limit = ((e.get("targets") or {}).get("pk_worst") or {}).get("threshold")
        for c in e.get("cosmologies") or []:
            where, err = _corner(hull, c), c["worst_abs_dP_over_P"]
            if where is None:
                elsewhere = max(elsewhere, err)
            elif where == corner and limit is not None and err > limit and (worst is None or err > worst[0][
                    "worst_abs_dP_over_P"]):
                worst = (c, e, limit)
    return worst, elsewhere


def corner_warning(card: dict | None, hull: dict, cosmology: dict, redshift: float) -> CornerWarning | None:
    """A warning when ``cosmology`` lies near a corner of the hull in (Omega_m, sigma8) where the card measured the
    model's P(k) beyond its target and worse than away from the corners, else ``None``.

    Parameters
    ----------
    card : dict or None
        The model's card (``EmulatorModel.card``); entries without ``cosmologies`` (older cards) say nothing.
    hull : dict
        ``{name: (low, high)}`` of the model (``EmulatorModel.hull()``).
    cosmology : dict
        The request's parameters (``Cosmology.to_dict()``).
    redshift : float
        The request's redshift; the graded redshifts that bracket it are read (the worse of the two is quoted).

    Notes
    -----
    Near a corner: both parameters at least :data:`CORNER_FRACTION` of the way from the hull's centre to its faces.
    A measured cosmology counts for the corner it is near; it is quoted when its worst ``|P/P_t - 1|`` (k <= k_Nyq/2)
    exceeds its entry's P(k) target and the worst of the cosmologies near no corner at that redshift.
    """
    if not card or not card.get("entries"):
        return None
    corner = _corner(hull, cosmology)
    if corner is None:
        return None
    found = []
    for z in _graded_redshifts(card["entries"], redshift):
        worst, elsewhere = _worst_at(card, hull, corner, z)
        if worst is not None and worst[0]["worst_abs_dP_over_P"] > elsewhere:
            found.append((worst[0]["worst_abs_dP_over_P"], worst, elsewhere))
    if not found:
        return None
    _, (c, e, limit), elsewhere = max(found, key=lambda f: f[0])
    side = tuple("high" if s > 0 else "low" for s in corner)
    text = (f"Omega_m = {cosmology['Omega_m']:g}, sigma8 = {cosmology['sigma8']:g} lies near the hull's ({side[0]} "
            f"Omega_m, {side[1]} sigma8) corner, where model {card.get('model', '?')}'s P(k) was measured "
            f"{c['worst_abs_dP_over_P']:.1%} off the converged truth (target {limit:.0%}; {elsewhere:.1%} at worst "
            f"away from the corners; 1 - r {c['worst_one_minus_r']:.4f}; z = {e['redshift']:g}, k <= "
            f"{e['k_max']:.2f} h/Mpc, Omega_m = {c['Omega_m']:g}, sigma8 = {c['sigma8']:g}, "
            f"{e['truth'].get('suite')}); see emulator info")
    return CornerWarning(side, float(e["redshift"]), text)
