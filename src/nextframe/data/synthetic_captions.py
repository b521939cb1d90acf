"""The synthetic world's words: what its captions can say and the one template that says it.

Apart from ``synthetic.py`` (which draws the clips) so that what is only about words can be
read without loading the video and tensor libraries: ``nextframe sample --help`` lists
``caption_words()``, the toy backbone's whole vocabulary (it learned from these captions
alone), and the privileged baselines read a caption's labels back with
``caption_attributes``.
"""

from __future__ import annotations

import itertools

SHAPES = ("circle", "square", "triangle")
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 180, 70),
    "blue": (40, 80, 230),
    "yellow": (240, 220, 40),
    "purple": (150, 60, 190),
    "orange": (250, 140, 30),
    "white": (245, 245, 245),
    "black": (20, 20, 20),
    "gray": (128, 128, 128),
}
TRANSLATIONS = {  # motion -> (unit direction in image coordinates, y down; caption words)
    "moves_right": ((1.0, 0.0), "from left to right"),
    "moves_left": ((-1.0, 0.0), "from right to left"),
    "moves_down": ((0.0, 1.0), "from top to bottom"),
    "moves_up": ((0.0, -1.0), "from bottom to top"),
}
MOTIONS = (*TRANSLATIONS, "grows", "shrinks", "rotates")
SPEEDS = ("slowly", "quickly")
SCALES = ("small", "large")


def caption(shape: str, color: str, background: str, motion: str, speed: str, scale: str) -> str:
    """The caption of a clip, e.g. "a large red circle moves quickly from left to right on a
    gray background"."""
    if motion in TRANSLATIONS:
        action = f"moves {speed} {TRANSLATIONS[motion][1]}"
    else:
        action = f"{motion} {speed}"
    article = "an" if background[0] in "aeiou" else "a"
    return f"a {scale} {color} {shape} {action} on {article} {background} background"


def caption_words() -> frozenset[str]:
    """Every word a synthetic caption can hold (from every combination of its attributes)."""
    return frozenset(
        word
        for attributes in itertools.product(SHAPES, COLORS, COLORS, MOTIONS, SPEEDS, SCALES)
        for word in caption(*attributes).split()
    )


def caption_attributes(text: str) -> tuple[str, str, str] | None:
    """(motion, speed, scale) a synthetic caption states, or None for any other caption.

    The inverse of ``caption`` for the labels that decide a clip's motion: the
    privileged baselines use it, at fit time and at rollout, to group clips by them.
    """
    words = text.split()
    scale = next((w for w in words if w in SCALES), None)
    speed = next((w for w in words if w in SPEEDS), None)
    motion = next(
        (m for m, (_, phrase) in TRANSLATIONS.items() if phrase in text),
        next((m for m in ("grows", "shrinks", "rotates") if m in words), None),
    )
    if scale is None or speed is None or motion is None:
        return None
    return motion, speed, scale
