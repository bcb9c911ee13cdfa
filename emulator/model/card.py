"""A model's card: the held-out accuracy that benchmark reports measured for it, kept beside the model file.

``<stem>.card.json`` next to ``<stem>.pt`` (written by ``python -m benchmarks.model_card``) records, for each
committed benchmark report that graded this very file, the worst and median P(k) error, the decorrelation, the
FoF halo counts, halo bias and mass function against suites of simulations never used in its training or selection,
and where in the hull its worst P(k) errors were (:mod:`emulator.model.corners`). It
serves models whose file carries no ``validation`` metadata, whose bytes must not change (reports check their
SHA-256). A card counts only while its ``sha256`` is the model file's: a retrained model file makes it stale.
Like :mod:`emulator.model.header`, this module does not import torch (``emulator info`` stays fast).
"""

from __future__ import annotations

import json
import sys
from itertools import groupby
from pathlib import Path

__all__ = ["CARD_FORMAT", "card_path", "read_card", "format_card"]

CARD_FORMAT = "cosmo-emulator-model-card"


def card_path(model_path: str | Path) -> Path:
    """The card file of a model file: ``<folder>/<stem>.card.json``."""
    model_path = Path(model_path)
    return model_path.with_name(f"{model_path.stem}.card.json")


def read_card(model_path: str | Path, sha256: str | None = None, *, quiet: bool = False) -> dict | None:
    """The card of the model file ``model_path``, or ``None`` when it has none or the card is not for it.

    Parameters
    ----------
    model_path : str or Path
        The model file (``.pt``); its card is :func:`card_path` of it.
    sha256 : str, optional
        The model file's SHA-256 if already known (hashed here otherwise).
    quiet : bool
        Say nothing about a card that is unreadable, not a card or stale (a model load, not ``emulator info``).

    Returns
    -------
    dict or None
        The card (see ``benchmarks/model_card.py``). A card that is unreadable, not a card, or stale (written for
        a file of another SHA-256) gives ``None`` and one warning line on stderr.
    """
    path = card_path(model_path)
    if not path.is_file():
        return None
    try:
        card = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        _say(quiet, f"warning: {path}: unreadable model card ({exc}); not shown")
        return None
    if not isinstance(card, dict) or card.get("format") != CARD_FORMAT or not isinstance(card.get("entries"), list):
        _say(quiet, f"warning: {path}: not a model card; not shown")
        return None
    if sha256 is None:
        from ..core.provenance import sha256_file

        sha256 = sha256_file(model_path)
    if card.get("sha256") != sha256:
        _say(quiet, f"warning: {path}: model card is stale (made for sha256 {str(card.get('sha256'))[:16]}..., the "
                    f"model file is {sha256[:16]}...); not shown")
        return None
    return card


def _say(quiet: bool, line: str) -> None:
    if not quiet:
        print(line, file=sys.stderr)


def _g(v: float | None) -> str:
    return "–" if v is None else f"{v:.3g}"


def _per_cosmology(e: dict) -> str:
    """The "per cosmology" halo cell: ``N/N_t range; b/b_t - 1 range; worst mass fn.`` or "–"."""
    ratio, bias, hmf = (e.get(k) for k in ("halo_count_ratio_cosmo", "halo_bias_cosmo", "mass_function_cosmo_worst"))
    if ratio is None and bias is None and hmf is None:
        return "–"
    r = "–" if ratio is None else f"{ratio[0]:.2f}-{ratio[1]:.2f}"
    b = "–" if bias is None else f"{bias[0]:+.3f} to {bias[1]:+.3f}"
    return f"{r}; {b}; {_g(hmf)}"


def _sim_key(e: dict) -> tuple:
    """What a report simulated: particles per side, box [Mpc/h], cosmologies, seeds, truth suite and recipe."""
    return (e["ngrid"], e["box_size"], e["n_cosmologies"], e["seeds_per_cosmology"], str(e["truth"].get("suite")),
            str(e["truth"].get("recipe_label")))


def format_card(card: dict) -> str:
    """The card as text: a heading naming the reports, then for each simulation setup (particle grid, box, test
    suite) a line naming it and a markdown table, one row per report (redshift).

    Columns: redshift; k range [h/Mpc] (to k_Nyq/2); worst and median ``|P/P_t - 1|``; worst ``1 - r``; FoF halo
    count ratio ``N/N_t`` (range over snapshots); worst mass-function ``|n/n_t - 1|``; worst large-scale halo
    bias ``|b/b_t - 1|``; halo masses as graded (``calibrated`` by the model's halo-mass calibration, or
    ``raw``: a report made before it, member count x particle mass); the halo statistics per test cosmology, its
    seeds together (range over cosmologies of ``sum N / sum N_t`` and of the mean ``b/b_t - 1``, worst
    mass-function bin with >= 400 truth halos in its seeds; "–" in a card made before them). Every other accuracy
    number is a dimensionless worst case over the test suite's cosmologies and seeds.
    """
    entries = sorted(card["entries"], key=lambda e: (_sim_key(e), e["redshift"]))  # one table per setup
    reports = ", ".join(e["report"] for e in entries)
    lines = [f"held-out accuracy (benchmark report{'s' if len(entries) > 1 else ''} {reports}; suites never "
             "used in this model's training or selection), the model against the converged truth, worst case over "
             "cosmologies and seeds (the per-cosmology column: ranges over the cosmologies, each with its seeds "
             "together):"]
    for (n, box, n_cosmo, seeds, suite, recipe), rows in groupby(entries, key=_sim_key):
        lines += [f"  {n}^3 particles in {box:g} Mpc/h, {n_cosmo} cosmologies x {seeds} seeds; truth: {suite} "
                  f"({recipe})",
                  "| z | k [h/Mpc], to k_Nyq/2 | worst abs(P/P_t - 1) | median abs(P/P_t - 1) | worst 1 - r "
                  "| FoF count N/N_t (>= 40 particles) | mass fn. worst abs(n/n_t - 1) "
                  "| halo bias worst abs(b/b_t - 1) | per cosmology, seeds together: N/N_t; b/b_t - 1; mass fn. "
                  "| halo masses | particles |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for e in rows:
            lines.append(f"| {e['redshift']:g} | {e['k_min']:.3f}-{e['k_max']:.3f} "
                         f"| {_g(e['worst_abs_dP_over_P'])} | {_g(e['median_abs_dP_over_P'])} "
                         f"| {_g(e['worst_one_minus_r'])} "
                         f"| {e['halo_count_ratio_min']:.2f}-{e['halo_count_ratio_max']:.2f} "
                         f"| {_g(e['mass_function_worst'])} | {_g(e['halo_bias_worst'])} | {_per_cosmology(e)} "
                         f"| {e.get('halo_masses', 'raw')} | {e.get('particles', 'network')} |")
    return "\n".join(lines)
