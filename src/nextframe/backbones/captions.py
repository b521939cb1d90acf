"""What a backbone makes of a caption a person typed: the words its text tower never learned
and the tokens it cuts off.

No caption fails inside a backbone: the tokenizers are byte-level (any text encodes, emoji
included) and every caption is padded or cut to the text tower's ``text_length`` tokens.
So a caption the model cannot understand, or one too long for it, is drawn all the same,
silently. ``caption_warnings`` says what happened, in lines a person can act on; whoever
calls it decides whether to go on.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from nextframe.backbones.base import Backbone

# What the check counts as a word: a run of letters, a run of digits, or a run of other
# symbols (punctuation, emoji), the units CLIP's tokenizer splits a caption into.
WORD = re.compile(r"[^\W\d_]+|\d+|[^\w\s]+")


def unknown_words(caption: str, vocabulary: Iterable[str]) -> list[str]:
    """The caption's words (lower-cased) outside ``vocabulary``, each once, in order."""
    known = set(vocabulary)
    return list(dict.fromkeys(w for w in WORD.findall(caption.lower()) if w not in known))


def caption_warnings(backbone: Backbone, caption: str) -> list[str]:
    """One line per problem with ``caption`` for ``backbone`` (none: it reads it all)."""
    warnings = []
    if backbone.vocabulary is not None:
        unknown = unknown_words(caption, backbone.vocabulary)
        if unknown:
            warnings.append(
                f"CAPTION: the {backbone.name} backbone never learned "
                f"{', '.join(repr(word) for word in unknown)} (its vocabulary is closed: "
                "`nextframe sample --help` lists it); drawing the video anyway, and those "
                "words change it in no meaningful way"
            )
    tokens = backbone.count_tokens(caption)
    if tokens > backbone.text_length:
        dropped = tokens - backbone.text_length
        warnings.append(
            f"CAPTION: {tokens} tokens (start and end marks included), but the "
            f"{backbone.name} text tower reads {backbone.text_length}: it drops the last "
            f"{dropped} (shorten the caption)"
        )
    return warnings
