"""A CLIP tokenizer vocabulary the project generates itself, for the toy backbone and the
kandinsky22 test fixture.

The real CLIP vocabulary (49,408 tokens) cannot be downloaded here and would dwarf the
small text towers, so they get a byte-level BPE vocabulary of their own: every
byte (so any caption encodes, nothing is ever unknown), plus merges that turn the words
of the captions this project writes (shapes, colours, motions, directions) into single
tokens, so the text tower sees words rather than letters. The format is CLIP's exactly:
``</w>`` marks the end of a word and the special tokens come last.
"""

from __future__ import annotations

from collections import Counter
from itertools import pairwise

from transformers import CLIPTokenizer

BOS_TOKEN = "<|startoftext|>"
EOS_TOKEN = "<|endoftext|>"
END_OF_WORD = "</w>"

# Words of the synthetic captions ("a red circle moves from left to right on a gray
# background"), the UCF50 template ("a person doing ...") and common caption words.
WORDS: tuple[str, ...] = (
    # shapes
    "circle", "square", "triangle", "star", "ring", "diamond", "cross", "ellipse",
    "rectangle", "hexagon", "disc", "dot", "box", "shape", "ball",
    # colours
    "red", "green", "blue", "yellow", "orange", "purple", "cyan", "magenta", "white",
    "black", "gray", "grey", "pink", "brown", "violet", "colour", "color",
    # motions
    "moves", "move", "moving", "grows", "grow", "growing", "shrinks", "shrink", "shrinking",
    "rotates", "rotate", "rotating", "spins", "turns", "slides", "bounces", "falls", "rises",
    "jumps", "runs", "walks",
    # directions and places
    "left", "right", "up", "down", "top", "bottom", "center", "centre", "middle",
    "clockwise", "counterclockwise", "anticlockwise", "side", "corner", "edge",
    # sizes and speeds
    "small", "large", "big", "tiny", "medium", "slowly", "quickly", "fast", "slow",
    # function words
    "a", "an", "the", "from", "to", "on", "in", "of", "at", "and", "with", "into", "over",
    "background", "foreground", "person", "doing", "playing", "man", "woman",
)  # fmt: skip


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible map from bytes to printable characters (byte-level BPE)."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    codes = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return {byte: chr(code) for byte, code in zip(printable, codes, strict=True)}


def learn_merges(words: tuple[str, ...]) -> list[tuple[str, str]]:
    """BPE training on ``words`` until each is one token; ties broken alphabetically.

    Encoding replays learned merges in the order they were learned, so every word of the
    list encodes to exactly one token (a merge chain written per word would not: "on"'s
    merges would split "person" into "pers" + "on").
    """
    spelled = [(*word[:-1], word[-1] + END_OF_WORD) for word in dict.fromkeys(words)]
    merges: list[tuple[str, str]] = []
    while True:
        counts = Counter(pair for symbols in spelled for pair in pairwise(symbols))
        if not counts:
            return merges
        best = min(counts, key=lambda pair: (-counts[pair], pair))
        merges.append(best)
        spelled = [merge_pair(symbols, best) for symbols in spelled]


def merge_pair(symbols: tuple[str, ...], pair: tuple[str, str]) -> tuple[str, ...]:
    merged: list[str] = []
    index = 0
    while index < len(symbols):
        if symbols[index : index + 2] == pair:
            merged.append(pair[0] + pair[1])
            index += 2
        else:
            merged.append(symbols[index])
            index += 1
    return tuple(merged)


def build_vocabulary(
    words: tuple[str, ...] = WORDS,
) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """(vocab, merges) in CLIP's layout: bytes, bytes + ``</w>``, merged symbols, specials."""
    byte_symbols = list(bytes_to_unicode().values())
    merges = learn_merges(words)
    tokens = byte_symbols + [symbol + END_OF_WORD for symbol in byte_symbols]
    tokens += [left + right for left, right in merges]
    tokens += [BOS_TOKEN, EOS_TOKEN]
    return {token: index for index, token in enumerate(tokens)}, merges


def build_tokenizer(max_length: int) -> CLIPTokenizer:
    """A CLIPTokenizer over the generated vocabulary; padding with EOS, as CLIP does."""
    vocab, merges = build_vocabulary()
    return CLIPTokenizer(
        vocab=vocab,
        merges=merges,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=EOS_TOKEN,
        unk_token=EOS_TOKEN,
        model_max_length=max_length,
    )
