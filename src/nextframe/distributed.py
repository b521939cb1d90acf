"""Several processes, GPUs or nodes for one stage, through an existing launcher.

A stage is spread over processes by starting it under ``torchrun`` or ``accelerate
launch`` (torch.distributed underneath): the launcher starts one process per GPU, on one
node or several, and tells each its ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and where to
meet (``MASTER_ADDR``, ``MASTER_PORT``). ``World.from_env`` reads those; without a launcher
it is one process of rank 0. The processes meet in a gloo process group (``process_group``)
for what they share, which is little: barriers and small Python objects (which rank made
what). The data go through files.

DVC runs a stage's ``cmd`` as it is written in ``dvc.yaml``; to run it under a launcher
without editing that file, set ``NEXTFRAME_LAUNCHER`` to the launcher's command line up to
the script, and the stage re-executes itself under it (``relaunch``)::

    NEXTFRAME_LAUNCHER="torchrun --standalone --nproc-per-node 8" dvc repro embed

becomes ``torchrun --standalone --nproc-per-node 8 stages/embed.py <the same arguments>``.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import torch.distributed as dist

from nextframe.device import resolve_device
from nextframe.errors import UserError

LAUNCHER_ENV = "NEXTFRAME_LAUNCHER"
LAUNCHED_ENV = "NEXTFRAME_LAUNCHED"  # set for the launched processes: never relaunch twice
TIMEOUT = timedelta(hours=6)  # the longest a rank waits for the others (a shard, a merge)


@dataclass(frozen=True)
class World:
    """This process's place among the processes of one stage run."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0  # rank on this node: which GPU

    @classmethod
    def from_env(cls) -> World:
        """From the variables torchrun and accelerate set; one process without them."""
        return cls(
            rank=int(os.environ.get("RANK", "0")),
            size=int(os.environ.get("WORLD_SIZE", "1")),
            local_rank=int(os.environ.get("LOCAL_RANK", "0")),
        )


@contextmanager
def process_group(world: World) -> Iterator[None]:
    """The gloo process group of ``world`` for the block (nothing for one process)."""
    if world.size == 1 or dist.is_initialized():
        yield
        return
    dist.init_process_group("gloo", rank=world.rank, world_size=world.size, timeout=TIMEOUT)
    try:
        yield
    finally:
        dist.destroy_process_group()


def all_gather(world: World, value: Any) -> list[Any]:
    """Every rank's ``value`` (picklable), in rank order, on every rank."""
    if world.size == 1:
        return [value]
    gathered: list[Any] = [None] * world.size
    dist.all_gather_object(gathered, value)
    return gathered


def barrier(world: World) -> None:
    if world.size > 1:
        dist.barrier()


def shard(weights: np.ndarray | list[float], world: World) -> slice:
    """This rank's contiguous range of items, ranges balanced by ``weights`` (e.g. frames per
    clip): item i goes to the rank whose share of the total holds the weight before it."""
    weights = np.asarray(weights, dtype=np.float64)
    before = np.cumsum(weights) - weights  # [N] total weight of the items before each
    total = float(weights.sum())
    bounds = [int(np.searchsorted(before, total * r / world.size)) for r in range(world.size)]
    bounds.append(len(weights))
    return slice(bounds[world.rank], bounds[world.rank + 1])


def rank_device(name: str, world: World) -> str:
    """The device of this rank: ``auto`` or ``cuda`` become this node's ``cuda:LOCAL_RANK``
    when several processes share the node's GPUs; anything else stays as it is."""
    if world.size == 1 or name not in ("auto", "cuda"):
        return name
    return f"cuda:{world.local_rank}" if resolve_device(name).type == "cuda" else name


def relaunch(argv: list[str] | None = None) -> None:
    """Re-execute this script under ``$NEXTFRAME_LAUNCHER`` if it is set and this process
    was not started by a launcher already; otherwise return and run here."""
    launcher = os.environ.get(LAUNCHER_ENV, "").strip()
    if not launcher or os.environ.get(LAUNCHED_ENV) or "RANK" in os.environ:
        return
    argv = list(sys.argv if argv is None else argv)
    command = [*shlex.split(launcher), *argv]
    os.environ[LAUNCHED_ENV] = "1"
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvp(command[0], command)
    except OSError as exc:
        raise UserError(
            f"{LAUNCHER_ENV}={launcher!r}: could not start {command[0]!r} ({exc}); expected "
            "a launcher command line up to the script, e.g. 'torchrun --standalone "
            "--nproc-per-node 8' or 'accelerate launch --num_processes 8'"
        ) from exc
