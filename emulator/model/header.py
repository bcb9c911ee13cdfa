"""Read a portable model file's header (everything but the weights) without importing torch.

``emulator info`` only needs the plain data of a model file (network settings, hull, cell size, metadata); loading
torch for that costs more than a second. A model file (:mod:`emulator.model.portable`) is torch's zip format: a
pickle ``<folder>/data.pkl`` whose tensors refer to separate storage records. :func:`read_header` unpickles it with
a restricted unpickler that knows only torch's tensor-rebuild function, its storage types and ``OrderedDict``;
every tensor becomes a :class:`TensorStub` (its shape only, no data is read) and any other global refuses the
file with a one-line ``ValueError``, as :func:`~emulator.model.portable.load_model` does; nothing is executed.

The accuracy table printed from a model's ``validation`` metadata (:func:`accuracy_table`) also lives here, free
of torch; it is the same text as :func:`emulator.training.evaluate.table`.
"""

from __future__ import annotations

import pickle
import zipfile
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.cosmology import PARAMETER_NAMES

__all__ = ["FORMAT", "ModelIdentity", "ModelHeader", "TensorStub", "read_header", "resolve_model_path",
           "embedded_models", "MODELS_DIR", "DEFAULT_MODEL", "LPT_MODEL", "unet_halo", "unet_input_size",
           "decoder_extra_crops", "accuracy_table"]

FORMAT = "cosmo-emulator-model"  # the ``format`` entry of every model file
_RESBLOCK_HALO = 2  # emulator.model.layers.StyledResBlock.halo: cells lost per side by one residual block


@dataclass(frozen=True)
class TensorStub:
    """A tensor of a model file seen without torch: its shape only."""

    shape: tuple[int, ...]


class _Storage:
    """Placeholder for a torch storage type or record (never read)."""


def _rebuild_tensor(storage: Any, offset: int, size: Any, *args: Any) -> TensorStub:
    return TensorStub(tuple(int(s) for s in size))


def _rebuild_parameter(data: Any, *args: Any) -> Any:
    return data


class _HeaderUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module == "torch" and name.endswith("Storage"):
            return _Storage
        if module == "collections" and name == "OrderedDict":
            return OrderedDict
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed")

    def persistent_load(self, pid: Any) -> Any:
        return _Storage()


class ModelIdentity:
    """Name and hull of a model, shared by :class:`ModelHeader` and :class:`~emulator.model.portable.EmulatorModel`
    (both have ``metadata``, ``path``, ``style_low`` and ``style_high``)."""

    metadata: dict
    path: str
    style_low: Any
    style_high: Any

    @property
    def name(self) -> str:
        return str(self.metadata.get("name", Path(self.path).stem or "model"))

    def hull(self) -> dict[str, tuple[float, float]]:
        """Training prior of each parameter and the redshift range."""
        names = [*PARAMETER_NAMES, "redshift"]
        return {k: (float(lo), float(hi)) for k, lo, hi in zip(names, self.style_low, self.style_high)}


@dataclass
class ModelHeader(ModelIdentity):
    """The plain data of a model file: what ``emulator info`` shows (see :class:`EmulatorModel` for the fields)."""

    network: dict
    style_low: tuple[float, ...]
    style_high: tuple[float, ...]
    cell_size: float  # Mpc/h
    metadata: dict = field(default_factory=dict)
    path: str = ""
    sha256: str = ""
    base: dict = field(default_factory=lambda: {"method": "2lpt"})  # emulator.core.pm_base.BaseRecipe.to_dict()
    velocity: str = "head"  # or "derivative" (emulator.model.velocity_derivative)

    @property
    def halo(self) -> int:
        """Cells lost per side by the network (``StyledUNet(**network).halo``)."""
        return unet_halo(int(self.network.get("depth", 2)), int(self.network.get("blocks", 1)))


def decoder_extra_crops(depth: int, level_loss: int) -> list[int]:
    """Extra crop (cells per side) after each up-sampling of a U-Net of ``depth`` levels losing ``level_loss``
    cells per side per level, so that the decoder loss at level ``l`` is a multiple of ``2^(depth-l-1)``."""
    return [-level_loss % 2 ** (depth - level - 1) for level in range(depth)]


def unet_input_size(output_size: int, depth: int, level_loss: int) -> int:
    """Input crop (cells per side) giving ``output_size`` cells (a multiple of ``2^depth``) out of the U-Net.

    The size bookkeeping of :class:`~emulator.model.unet.StyledUNet`, which calls it; one-line ``ValueError`` for
    an output size the architecture cannot produce.
    """
    size, extra = output_size, decoder_extra_crops(depth, level_loss)
    for level in range(depth):  # decoder, top down: blocks, extra crop, transposed conv (doubling)
        size += 2 * (level_loss + extra[level])
        if size % 2:
            raise ValueError(f"output_size {output_size} is incompatible with the architecture")
        size //= 2
    size += 2 * level_loss  # bottom
    for _ in range(depth):  # encoder, bottom up: stride-2 conv (exact halving) then blocks
        size = 2 * size + 2 * level_loss
    return size


def unet_halo(depth: int, blocks: int) -> int:
    """``StyledUNet(depth=depth, blocks=blocks).halo`` by the same size bookkeeping, without building it."""
    c = 2**depth
    return (unet_input_size(c, depth, blocks * _RESBLOCK_HALO) - c) // 2


def _bad(path: Path) -> ValueError:
    return ValueError(f"{path}: not a cosmo-emulator model file (not a torch file of tensors and plain data; "
                      "model files are only read weights-only)")


MODELS_DIR = Path(__file__).resolve().parents[1] / "models"  # the embedded models: emulator/models/<name>.pt
#: The embedded model used where none is named: the network correcting a 4-step COLA run (2 Mpc/h), trained on
#: the converged truth. On the held-out test suites it is ahead of ``hybrid_pm4`` (the same network over 4 FastPM
#: steps, the default before it) in P(k), r(k), the equilateral bispectrum, the parameter responses and the halo
#: counts at 128^3 (benchmarks/results/hybrid_cola4_* and response_cola4 against hybrid_standard*, full_generator*
#: and response_hybrid).
DEFAULT_MODEL = "hybrid_cola4"
#: The embedded 2 Mpc/h model that corrects 2LPT (the default until the converged truth): the one a memory-capped
#: run can stream tile by tile (a PM base needs the whole box), and the model the committed standard, scaling and
#: response reports grade.
LPT_MODEL = "default"


def embedded_models() -> list[str]:
    """Names of the embedded models (``default``, ``hybrid_pm4``, ...), usable wherever a model file is asked for."""
    return sorted(p.stem for p in MODELS_DIR.glob("*.pt"))


def resolve_model_path(path: str | Path | None) -> Path:
    """A model file: ``None`` is the embedded default (:data:`DEFAULT_MODEL`), an existing file is itself, and a bare
    name that is no file is the embedded model of that name (``hybrid_pm4`` -> ``emulator/models/hybrid_pm4.pt``)."""
    if path is None:
        return MODELS_DIR / f"{DEFAULT_MODEL}.pt"
    path = Path(path)
    if not path.exists() and path.parent == Path(".") and (MODELS_DIR / f"{path.name}.pt").is_file():
        return MODELS_DIR / f"{path.name}.pt"
    return path


def read_header(path: str | Path | None = None) -> ModelHeader:
    """The header of a model file (default: the embedded model; a bare name: an embedded model, see
    :func:`resolve_model_path`), read without torch and without the weights.

    Raises ``FileNotFoundError`` for a missing file and a one-line ``ValueError`` naming the file for anything
    that is not a cosmo-emulator model file.
    """
    from ..core.provenance import sha256_file

    path = resolve_model_path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file {path} does not exist")
    try:
        with zipfile.ZipFile(path) as zf:
            names = [n for n in zf.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
            if len(names) != 1:
                raise _bad(path)
            with zf.open(names[0]) as fh:
                payload = _HeaderUnpickler(fh).load()
    except Exception:  # noqa: BLE001 - any failure of the restricted reader is a bad file
        raise _bad(path) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path}: not a cosmo-emulator model file")
    try:
        return ModelHeader(
            network=dict(payload["network"]),
            style_low=tuple(float(v) for v in payload["style_low"]),
            style_high=tuple(float(v) for v in payload["style_high"]),
            cell_size=float(payload["cell_size"]),
            metadata=payload.get("metadata", {}),
            path=str(path),
            sha256=sha256_file(path),
            base=dict(payload.get("base") or {"method": "2lpt"}),
            velocity=str(payload.get("velocity", "head")),
        )
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"{path}: not a cosmo-emulator model file (incomplete header)") from None


def accuracy_table(summary: dict, every: int = 1) -> str:
    """Markdown table up to k_Nyq/2 of a validation summary (same text as ``emulator.training.evaluate.table``)."""
    k = [float(v) for v in summary["k"]]
    lines = ["| k [h/Mpc] | P ratio 2LPT | P ratio emulator | worst emulator | r 2LPT | r emulator "
             "| worst r emulator |", "|---|---|---|---|---|---|---|"]
    for i in range(0, len(k), every):
        if k[i] > summary["k_nyquist"] / 2 + 1e-9:
            break
        lines.append(
            f"| {k[i]:.3f} | {summary['2lpt']['ratio_mean'][i]:.4f} | {summary['emulator']['ratio_mean'][i]:.4f} "
            f"| {summary['emulator']['ratio_worst'][i]:.4f} | {summary['2lpt']['r_mean'][i]:.4f} "
            f"| {summary['emulator']['r_mean'][i]:.4f} | {summary['emulator']['r_worst'][i]:.4f} |"
        )
    return "\n".join(lines)
