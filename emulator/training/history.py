"""Training history of a checkpoint or model file: the segments (one ``emulator fit`` run each) that made it.

A history is a list of segments, oldest first, each a plain dict (storable with ``torch.save``, loadable with
``weights_only=True``)::

    {"step_from": int, "step_to": int,          # optimiser steps, contiguous: 0 -> ... -> final global_step
     "config": str or None,                     # the segment's effective LightningCLI config (YAML text)
     "config_files": [str, ...],                # the --config files it came from, in order
     "resumed_from": str or None,               # checkpoint the segment started from
     "checkpoint": str or None,                 # checkpoint written at its end
     "wall_time_s": float or None,              # training wall time of the segment, s
     "note": str}                               # optional, e.g. how a number was obtained

New runs record it themselves (:class:`emulator.training.callbacks.TrainingHistory`); for older checkpoints
``emulator export`` builds it from repeated ``--config`` files or takes a ``--history`` JSON file (this module).
This module imports neither torch nor Lightning.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Sequence

import yaml

__all__ = ["layer_configs", "history_from_configs", "read_history_json", "check_history", "link_checkpoints",
           "format_history"]


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in over.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def layer_configs(texts: Sequence[str]) -> list[dict]:
    """Effective config after each of ``texts`` (YAML), later files overriding earlier ones key by key.

    This is how ``emulator fit --config A --config B`` reads them (mappings merge, lists and values replace).
    """
    out, current = [], {}
    for text in texts:
        current = _merge(current, yaml.safe_load(text) or {})
        out.append(current)
    return out


def _max_steps(cfg: dict) -> int | None:
    value = (cfg.get("trainer") or {}).get("max_steps")
    return None if value in (None, -1) else int(value)


def history_from_configs(files: Sequence[str | Path], final_step: int, label: str = "--config") -> list[dict]:
    """Segments from the config files of consecutive runs (see :func:`layer_configs`).

    Segment ``k`` ran with files ``1..k`` layered; it ended at that config's ``trainer.max_steps``, the last one
    at ``final_step`` (the checkpoint's ``global_step``). Raises ``ValueError`` (naming ``label`` and the file)
    when the steps cannot have produced the checkpoint, e.g. one config with ``max_steps`` below ``final_step``.
    """
    texts = []
    for f in files:
        if not Path(f).is_file():
            raise FileNotFoundError(f"config file {f} does not exist ({label})")
        texts.append(Path(f).read_text())
    layered = layer_configs(texts)
    segments, start = [], 0
    for k, cfg in enumerate(layered):
        last = k == len(layered) - 1
        end = final_step if last else _max_steps(cfg)
        limit = _max_steps(cfg)
        if end is None or end < start or (limit is not None and end > limit):
            raise ValueError(
                f"{label} {files[k]}: trainer.max_steps={limit} cannot end a run starting at step {start} "
                f"(checkpoint global_step {final_step}): give one --config per run, or --history"
            )
        text = texts[0] if k == 0 else yaml.safe_dump(cfg, sort_keys=False)
        segments.append({"step_from": start, "step_to": end, "config": text,
                         "config_files": [str(f) for f in files[: k + 1]], "resumed_from": None,
                         "checkpoint": None, "wall_time_s": None})
        start = end
    if len(segments) == 1 and _max_steps(layered[0]) not in (None, final_step):
        segments[0]["note"] = "stopped before trainer.max_steps (max_time, max_epochs or an interruption)"
    return segments


def read_history_json(path: str | Path) -> list[dict]:
    """A history from a JSON file: a list of segments; ``config_files`` are read into ``config`` when absent."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"history file {path} does not exist (--history)")
    try:
        history = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}) (--history)") from None
    if not isinstance(history, list) or not all(isinstance(s, dict) for s in history):
        raise ValueError(f"{path}: expected a JSON list of segments (--history)")
    for seg in history:
        files = seg.get("config_files") or []
        if seg.get("config") is None and files:
            missing = [str(f) for f in files if not Path(f).is_file()]
            if missing:
                raise FileNotFoundError(f"{path}: config file {missing[0]} does not exist (--history)")
            seg["config"] = yaml.safe_dump(layer_configs([Path(f).read_text() for f in files])[-1], sort_keys=False)
    return history


def check_history(history: Any, final_step: int, source: str) -> list[dict]:
    """Validate a history against the checkpoint's ``global_step``; one-line ``ValueError`` naming ``source``."""
    if not isinstance(history, list) or not history:
        raise ValueError(f"training history from {source} is empty")
    start = 0
    for k, seg in enumerate(history, 1):
        a, b = seg.get("step_from"), seg.get("step_to")
        if not (isinstance(a, int) and isinstance(b, int)) or a != start or b < a:
            raise ValueError(f"training history from {source}: segment {k} covers steps {a} -> {b}, expected "
                             f"integer steps from {start} (segments must be contiguous from 0)")
        wall = seg.get("wall_time_s")
        if wall is not None and not (isinstance(wall, (int, float)) and wall >= 0):
            raise ValueError(f"training history from {source}: segment {k} wall_time_s={wall!r} (s, >= 0 or null)")
        if seg.get("config") is not None and not isinstance(seg["config"], str):
            raise ValueError(f"training history from {source}: segment {k} config must be YAML text or null")
        start = b
    if start != final_step:
        raise ValueError(f"training history from {source} ends at step {start}, the checkpoint at {final_step}")
    return history


def link_checkpoints(history: list[dict], checkpoint: str) -> list[dict]:
    """Fill ``checkpoint`` of each segment: the next segment's ``resumed_from``, and ``checkpoint`` for the last."""
    out = [dict(s) for s in history]
    for seg, nxt in zip(out, out[1:]):
        if not seg.get("checkpoint") and nxt.get("resumed_from"):
            seg["checkpoint"] = nxt["resumed_from"]
    out[-1]["checkpoint"] = str(checkpoint)
    return out


def _minutes(seconds: float | None) -> str:
    if seconds is None:
        return "wall time unknown"
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def format_history(history: Sequence[dict]) -> str:
    """Human-readable lines for ``emulator info``."""
    walls = [s.get("wall_time_s") for s in history]
    total = None if any(w is None for w in walls) else sum(walls)
    lines = [f"training history: {len(history)} segment(s), {history[-1]['step_to']} steps, {_minutes(total)}"]
    for k, s in enumerate(history, 1):
        files = " + ".join(s.get("config_files") or []) or ("config stored" if s.get("config") else "no config")
        line = f"  {k}. steps {s['step_from']} -> {s['step_to']}, {_minutes(s.get('wall_time_s'))}, {files}"
        if s.get("resumed_from"):
            line += f", resumed from {s['resumed_from']}"
        if s.get("checkpoint"):
            line += f" -> {s['checkpoint']}"
        lines.append(line)
        if s.get("note"):
            lines.append(f"     note: {s['note']}")
    return "\n".join(lines)
