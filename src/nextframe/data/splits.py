"""Seeded train/val/test assignment that does not move a key when other keys change.

Each key is hashed with the seed to a position ``u`` in [0, 1); ``u < test`` is test,
``u < test + val`` is val, the rest is train. A key's split therefore depends only on the
key, the seed and the fractions: adding or removing clips (a larger TGIF sample, another
UCF50 class) never moves a clip that was already held out into training. Sources that
must keep groups together (UCF50's ``gNN`` actors) pass group ids as keys and give each
clip its group's split.

Small sets: with three or more distinct keys, a split whose fraction is nonzero is never
left empty. Empty splits are filled in the order test, val, train by moving, from the
split that holds the most keys, the key whose position is closest to the empty split's
interval (ties broken by key). Only then can a key's split depend on the other keys.
"""

from __future__ import annotations

import hashlib

from nextframe.config import SplitFractions

SPLIT_NAMES = ("train", "val", "test")


def split_position(key: str, seed: int) -> float:
    """The key's uniform position in [0, 1): the first 8 bytes of sha256(seed, key)."""
    digest = hashlib.sha256(f"{seed}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _intervals(fractions: SplitFractions) -> dict[str, tuple[float, float]]:
    held_out = fractions.test + fractions.val
    return {
        "test": (0.0, fractions.test),
        "val": (fractions.test, held_out),
        "train": (held_out, 1.0),
    }


def _bucket(position: float, intervals: dict[str, tuple[float, float]]) -> str:
    for name in ("test", "val"):
        if position < intervals[name][1]:
            return name
    return "train"


def _distance(position: float, interval: tuple[float, float]) -> float:
    low, high = interval
    return max(low - position, position - high, 0.0)


def assign_splits(keys: list[str], fractions: SplitFractions, seed: int) -> dict[str, str]:
    """Map every distinct key to ``train``, ``val`` or ``test`` (rule in the module doc)."""
    intervals = _intervals(fractions)
    positions = {key: split_position(key, seed) for key in dict.fromkeys(keys)}
    splits = {key: _bucket(u, intervals) for key, u in positions.items()}
    if len(positions) < 3:
        return splits
    for name in ("test", "val", "train"):
        low, high = intervals[name]
        if high <= low or name in splits.values():
            continue
        members = {split: [k for k, s in splits.items() if s == split] for split in SPLIT_NAMES}
        donor = max(SPLIT_NAMES, key=lambda split: len(members[split]))
        moved = min(members[donor], key=lambda k: (_distance(positions[k], (low, high)), k))
        splits[moved] = name
    return splits
