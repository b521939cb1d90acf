"""Seeded split assignment: stable per key, close to the fractions, no empty held-out split."""

from __future__ import annotations

from collections import Counter

import pytest

from nextframe.config import SplitFractions
from nextframe.data.splits import assign_splits

FRACTIONS = SplitFractions(val=0.15, test=0.15)


def keys(n: int, prefix: str = "clip") -> list[str]:
    return [f"{prefix}{index:04d}" for index in range(n)]


def test_a_key_keeps_its_split_when_other_keys_come_and_go() -> None:
    everything = assign_splits(keys(300), FRACTIONS, seed=0)
    subset = keys(300)[100:200]
    assert assign_splits(subset, FRACTIONS, seed=0) == {key: everything[key] for key in subset}
    grown = assign_splits(keys(300) + keys(50, prefix="new"), FRACTIONS, seed=0)
    assert {key: grown[key] for key in everything} == everything


def test_fractions_are_roughly_respected_and_the_seed_matters() -> None:
    splits = assign_splits(keys(1000), SplitFractions(val=0.2, test=0.1), seed=3)
    counts = Counter(splits.values())
    assert abs(counts["val"] - 200) < 45
    assert abs(counts["test"] - 100) < 35
    assert counts["train"] + counts["val"] + counts["test"] == 1000
    assert splits != assign_splits(keys(1000), SplitFractions(val=0.2, test=0.1), seed=4)


@pytest.mark.parametrize("n", [3, 4, 5, 8])
@pytest.mark.parametrize("seed", range(10))
def test_small_sets_get_every_split(n: int, seed: int) -> None:
    splits = assign_splits(keys(n), FRACTIONS, seed=seed)
    assert set(splits.values()) == {"train", "val", "test"}


def test_a_zero_fraction_stays_empty_and_duplicates_collapse() -> None:
    splits = assign_splits(keys(5) + keys(5), SplitFractions(val=0.0, test=0.2), seed=1)
    assert len(splits) == 5
    assert "val" not in splits.values()
    assert {"train", "test"} <= set(splits.values())


def test_groups_as_keys_keep_their_clips_together() -> None:
    groups = [f"g{index:02d}" for index in range(1, 26)]
    splits = assign_splits(groups, FRACTIONS, seed=0)
    assert set(splits) == set(groups)
    assert set(splits.values()) == {"train", "val", "test"}
