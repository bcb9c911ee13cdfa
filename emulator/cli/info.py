"""``emulator info``: what a model is, its parameter hull and its measured held-out accuracy."""

from __future__ import annotations

import argparse

__all__ = ["add_arguments", "run"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``emulator info``."""
    # "%(default).0s" prints nothing; it stops ArgumentDefaultsHelpFormatter from adding "(default: None)"
    p.add_argument("--model", default=None, help="model file, or the name of an embedded model such as hybrid_pm4 "
                   "(default: the embedded model)%(default).0s")


def run(args: argparse.Namespace) -> int:
    """Print what the model is, its hull and its measured accuracy (read without torch: fast)."""
    from ..model.header import ModelHeader, accuracy_table, read_header

    try:
        m = read_header(args.model)
    except ValueError:  # not torch's zip format (e.g. a legacy torch file): the full, weights-only loader decides
        from ..model.portable import load_model

        full = load_model(args.model)
        m = ModelHeader(network=dict(full.net.config), style_low=tuple(full.style_low),
                        style_high=tuple(full.style_high), cell_size=full.cell_size, metadata=full.metadata,
                        path=full.path, sha256=full.sha256, base=full.base.to_dict(), velocity=full.velocity)
    print(f"model: {m.name}  ({m.path})\nsha256: {m.sha256}")
    print(f"resolution: Lagrangian cell {m.cell_size:g} Mpc/h; network halo {m.halo} cells")
    from ..core.base_recipe import BaseRecipe

    print(f"corrects: {BaseRecipe.from_dict(m.base, where=m.path).label()} (the network's input and base)")
    print("velocities: " + ("the displacement's derivative with respect to ln D1 (no velocity head)"
                            if m.velocity == "derivative" else "a velocity head beside the displacement"))
    print("training hull:")
    for name, (lo, hi) in m.hull().items():
        print(f"  {name:8s} [{lo:.4g}, {hi:.4g}]")
    meta = m.metadata
    if meta.get("description"):
        print(f"description: {meta['description']}")
    if "training" in meta:
        n_lines = len(meta["training"].get("config", "").splitlines())
        print(f"training config: stored in the model file ({n_lines} lines)")
    if isinstance(meta.get("init_from"), dict):
        src = meta["init_from"]
        print(f"fine-tuned from: {src.get('file')} (sha256 {str(src.get('sha256'))[:16]}...)")
    if meta.get("history"):
        from ..training.history import format_history

        print(format_history(meta["history"]))
    val = meta.get("validation")
    if val:
        print(f"held-out accuracy ({val['split']} split, {val['n_samples']} simulation snapshots), "
              f"P(k) ratio and r(k) against the simulations, up to k_Nyq/2 = {val['k_nyquist'] / 2:.3f} h/Mpc:")
        print(accuracy_table(val))
        for name in ("emulator", "2lpt"):
            v = val[name]
            print(f"  {name:8s} max|P ratio - 1| = {v['max_abs_ratio_minus_1_to_half_nyquist']:.4f}, "
                  f"max(1 - r) = {v['max_one_minus_r_to_half_nyquist']:.4f}")
    from ..model.card import format_card, read_card

    card = read_card(m.path, sha256=m.sha256)  # the benchmark reports' numbers, kept beside the model file
    if card:
        print(format_card(card))
    from ..model.halo_calibration import read_calibration
    from ..model.pgd_correction import pgd_digest, read_pgd

    pgd = read_pgd(m.path, m.sha256)  # what emulator generate applies to the particles
    print(pgd.describe() if pgd else "PGD sharpening: none (particles are the network's)")
    cal = read_calibration(m.path, m.sha256, pgd_sha256=pgd_digest(pgd))  # what emulator generate applies to FoF masses
    print(cal.describe() if cal else "halo-mass calibration: none (FoF masses are member count x particle mass)")
    from ..model.velocity_dispersion import read_vdisp

    vdisp = read_vdisp(m.path, m.sha256)  # what emulator generate adds to the velocities
    print(vdisp.describe() if vdisp else "velocity dispersion: none (velocities are the network's)")
    return 0
