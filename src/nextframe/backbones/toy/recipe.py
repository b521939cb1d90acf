"""Everything the toy backbone's weights depend on, and its digest.

A ``Recipe`` names the corpus (which synthetic clips, drawn how), the architecture and
every training setting. The same recipe on the same machine gives the same weights to
the bit, so the weights file records the recipe's digest and the loader refuses a file
whose digest is not the code's: the file then came from another version of this code
and must be rebuilt (``nextframe backbone build toy``).

``VERSION`` is part of the digest: bump it whenever the build code changes what it
computes without any field below changing (a new loss term, another sampling order, a
change to the synthetic generator). ``nextframe backbone build toy --check`` catches a
forgotten bump: the rebuilt file then differs from the shipped one.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

VERSION = 2  # 2: a decoder that draws the three shapes; no last-frame head; corpus
# captions only from the backbone's side of the caption partition (data.synthetic)


@dataclass(frozen=True)
class Recipe:
    """The toy backbone's corpus, architecture and training; the defaults are what ships."""

    # corpus: clips of the synthetic source, drawn from a seed the pipeline never uses
    # (download.seed defaults to 0) at the pipeline's defaults (24 frames, 8 fps, 64 px);
    # every other clip goes through the MP4 codec and back, as half the pipeline's clips do
    # only clips whose caption is on the backbone's side of the caption partition (corpus.py)
    corpus_seed: int = 90_210
    n_clips: int = 1200
    n_frames: int = 24
    fps: float = 8.0
    size: int = 64

    # architecture
    dim: int = 128  # D: image embedding, text hidden states, text and prior embeddings
    text_length: int = 20  # T: tokens per caption (BOS and EOS included); captions are <= 16
    text_layers: int = 2
    text_heads: int = 4
    encoder_channels: tuple[int, ...] = (16, 32, 64, 64)  # one stride-2 conv each: 64 -> 4 px
    hidden: int = 256

    # the code the image tower is taught (features.py): cos(e_a, e_b) = sum_f weight_f k_f(a, b)
    weight_background: float = 0.2  # same background colour: 1, else 0
    weight_color: float = 0.2  # same object colour
    weight_shape: float = 0.1  # same shape
    weight_position: float = 0.25  # exp(-|centre_a - centre_b|^2 / (2 sigma^2)), pixels
    weight_size: float = 0.15  # exp(-(log r_a - log r_b)^2 / (2 sigma^2))
    weight_angle: float = 0.1  # same shape and cos(symmetry * (angle_a - angle_b))
    position_sigma_px: float = 10.0
    size_sigma_log: float = 0.2

    # image towers (encoder and decoder, trained together)
    image_steps: int = 1200
    image_clips_per_batch: int = 16
    image_frames_per_clip: int = 4
    image_lr: float = 3e-3
    code_loss: float = 1.0  # squared distance of the embedding to the frame's code
    reconstruction_loss: float = 1.0
    mask_loss: float = 0.1  # cross-entropy of the decoder's mask against the object's coverage
    parameter_loss: float = 0.1  # the decoder's reading of the object against the truth
    clip_norm: float = 1.0  # gradient norm clip (see build.train_image_towers)
    decoder_noise: float = 0.02  # Gaussian noise on the decoder's input embedding, per dim

    # text tower and prior, trained against the frozen image tower (locked-image tuning)
    text_steps: int = 800
    text_batch: int = 64
    text_lr: float = 2e-3
    temperature: float = 0.05
    prior_loss: float = 1.0

    seed: int = 0
    threads: int = 1  # fixed: float sums can depend on how work is split between threads

    def to_dict(self) -> dict:
        """The recipe with the code version and the tokenizer's words (they size the model)."""
        from nextframe.backbones.vocabulary import WORDS

        return {"version": VERSION, "words": list(WORDS), **asdict(self)}

    def digest(self) -> str:
        payload = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(payload).hexdigest()[:16]


RECIPE = Recipe()
