"""Runs over several processes, GPUs or nodes with ``torch.distributed``, launched by ``torchrun``.

Nothing here spawns processes: ``torchrun`` does (it sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``), e.g.::

    torchrun --standalone --nproc_per_node 2 -m emulator.cli generate --preset planck18 -n 8 --out mocks

Without those variables (or with ``WORLD_SIZE=1``) every function is a no-op for one process, so the same code
runs unchanged in a plain ``python`` call. Work is split by :func:`shard` (round-robin, deterministic), so a
given seed is computed by the same code whatever the number of processes.
"""

from __future__ import annotations

import atexit
import os
from typing import Any, Sequence, TypeVar

__all__ = ["rank_world", "is_distributed", "init_if_needed", "shard", "barrier", "all_gather_objects",
           "rank_device", "launched_by_torchrun"]

T = TypeVar("T")


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name} must be an integer, got {value!r}") from None


def launched_by_torchrun() -> bool:
    """Whether the process was started by ``torchrun`` (``WORLD_SIZE`` set, even to 1)."""
    return os.environ.get("WORLD_SIZE", "") != ""


def rank_world() -> tuple[int, int]:
    """``(rank, world_size)`` from the ``torchrun`` environment (``RANK``, ``WORLD_SIZE``); ``(0, 1)`` without."""
    world = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"RANK={rank} / WORLD_SIZE={world}: need WORLD_SIZE >= 1 and 0 <= RANK < WORLD_SIZE")
    return rank, world


def is_distributed() -> bool:
    """Whether this is one of several processes (``WORLD_SIZE`` > 1)."""
    return rank_world()[1] > 1


def rank_device(device: str) -> str:
    """The device of this rank: ``cuda`` becomes ``cuda:<LOCAL_RANK>`` in a multi-process run; others unchanged."""
    if device == "cuda" and is_distributed():
        return f"cuda:{_env_int('LOCAL_RANK', 0)}"
    return device


def init_if_needed(device: str = "cpu") -> bool:
    """Initialise the default process group if this is a multi-process run and it is not yet initialised.

    Backend ``nccl`` when ``device`` is a CUDA device and CUDA is available, else ``gloo``. Returns whether a
    process group is (now) in use.
    """
    if not is_distributed():
        return False
    import torch
    import torch.distributed as dist

    if not dist.is_available():
        raise ValueError("WORLD_SIZE > 1 but this torch has no torch.distributed support")
    if dist.is_initialized():
        return True
    backend = "nccl" if str(device).startswith("cuda") and torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(_env_int("LOCAL_RANK", 0))
    dist.init_process_group(backend=backend)
    atexit.register(_destroy_process_group)
    return True


def _destroy_process_group() -> None:
    """Tear down the group this module created before the interpreter finalises.

    A group left to the C++ destructors at exit can abort the process ("terminate called without an active
    exception" from gloo's threads, exit code -6) after all its work is done; destroying it here joins those
    threads first.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        try:
            dist.destroy_process_group()
        except Exception:  # noqa: BLE001 - at exit, after an error elsewhere: nothing left to report it to
            pass


def shard(items: Sequence[T], rank: int, world: int) -> list[T]:
    """The items of ``rank`` among ``world`` processes: ``items[rank::world]`` (round-robin, deterministic).

    Every item belongs to exactly one rank; the shards of ranks ``0 .. world - 1`` together are ``items``.
    """
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"shard: need world >= 1 and 0 <= rank < world, got rank={rank}, world={world}")
    return list(items[rank::world])


def barrier() -> None:
    """Wait for every rank (no-op without a process group)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        if dist.get_backend() == "nccl":
            import torch

            dist.barrier(device_ids=[torch.cuda.current_device()])
        else:
            dist.barrier()


def all_gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj`` (picklable), in rank order, on every rank; ``[obj]`` without a process group."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out
