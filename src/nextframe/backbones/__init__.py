"""Text/image encoders, prior and decoder behind one interface (DESIGN.md, "Backbones").

Every later stage calls ``load_backbone(params.backbone)`` and uses only the interface
below, so switching ``backbone.name`` changes no other code:

- ``encode_images(images) -> [N, D]`` raw CLIP image embeddings,
- ``encode_texts(captions) -> TextEncoding`` (text_embed [N, D], hidden_states [N, T, D],
  prior_embed [N, D]),
- ``decode(image_embeds, *, size, steps, guidance, seed) -> list[PIL.Image]``,
- ``negative_embed() -> [D]``; attributes ``name``, ``dim``, ``text_length``,
  ``model_ids`` and ``info`` (the ``EmbeddingInfo`` written into every embedding table).

``tiny`` builds Kandinsky 2.2's classes at toy size once into a local cache
(``$NEXTFRAME_CACHE``, default ``~/.cache/nextframe``); ``kandinsky22`` loads the real
repositories (hub ids or local folders) named in params.
"""

from __future__ import annotations

from nextframe.backbones import tiny
from nextframe.backbones.unclip import TextEncoding, UnclipBackbone, load_unclip
from nextframe.config import BackboneParams
from nextframe.errors import UserError
from nextframe.store import EmbeddingInfo

Backbone = UnclipBackbone

__all__ = ["Backbone", "TextEncoding", "check_compatible", "load_backbone"]


def check_compatible(backbone: Backbone, info: EmbeddingInfo) -> None:
    """Refuse to mix a backbone with embeddings another backbone made."""
    if backbone.name != info.backbone or backbone.dim != info.dim:
        raise UserError(
            f"the embeddings were made by backbone {info.backbone!r} (D={info.dim}) but "
            f"backbone.name is {backbone.name!r} (D={backbone.dim}); rerun embed (dvc repro)"
        )


def load_backbone(params: BackboneParams) -> Backbone:
    """The backbone named by ``params.name``, on ``params.device`` in ``params.dtype``."""
    settings = {
        "device": params.device,
        "dtype": params.dtype,
        "prior_steps": params.prior_steps,
        "prior_guidance": params.prior_guidance,
        "seed": params.seed,
    }
    if params.name == "tiny":
        prior_dir, decoder_dir = tiny.ensure_tiny()
        model_ids = {
            "prior": f"{prior_dir.parent.name}/prior",
            "decoder": f"{prior_dir.parent.name}/decoder",
        }
        return load_unclip(
            "tiny", str(prior_dir), str(decoder_dir), revision=None, model_ids=model_ids, **settings
        )
    return load_unclip(
        params.name,
        params.prior_model,
        params.decoder_model,
        revision=params.revision,
        **settings,
    )
