"""What the toy backbone makes of a typed caption: words it never learned, tokens it drops."""

from __future__ import annotations

import pytest

from nextframe.backbones.captions import caption_warnings, unknown_words
from nextframe.backbones.toy import load_toy
from nextframe.config import SyntheticParams
from nextframe.data.synthetic import make_specs


@pytest.fixture(scope="module")
def toy():
    return load_toy()


def test_every_synthetic_caption_is_read_whole_and_without_unknown_words(toy) -> None:
    captions = {spec.caption() for spec in make_specs(SyntheticParams(n_clips=400), seed=3)}
    assert [caption_warnings(toy, caption) for caption in captions] == [[]] * len(captions)


def test_words_outside_the_synthetic_world_are_named_once_each_in_order(toy) -> None:
    [warning] = caption_warnings(toy, "A Teal hexagon moves up, a teal hexagon!")
    assert warning.startswith(
        "CAPTION: the toy backbone never learned 'teal', 'hexagon', 'up', ',', '!' "
    )


def test_a_caption_past_the_text_towers_length_says_how_many_tokens_are_dropped(toy) -> None:
    words = 30  # each a single token of the toy's vocabulary, plus the start and end marks
    [warning] = caption_warnings(toy, " ".join(["red"] * words))
    assert toy.text_length == 20
    assert warning == (
        "CAPTION: 32 tokens (start and end marks included), but the toy text tower reads 20: "
        "it drops the last 12 (shorten the caption)"
    )


def test_emoji_and_unknown_letters_are_words_too() -> None:
    assert unknown_words("a 🔴 circle ✨✨ moves", {"a", "circle", "moves"}) == ["🔴", "✨✨"]
    assert unknown_words("ROT-13 circle", {"circle"}) == ["rot", "-", "13"]
