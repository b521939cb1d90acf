"""Text/image encoders, prior and decoder behind one interface (DESIGN.md, "Backbones").

Every later stage calls ``load_backbone(params.backbone)`` and uses only the ``Backbone``
interface (``base.py``), so switching ``backbone.name`` changes no other code:

- ``toy`` (the default, offline): a small unCLIP trained by this project on synthetic
  clips; its weights ship with the package (``nextframe backbone build toy`` rebuilds them).
- ``kandinsky22``: the real Kandinsky 2.2 prior and decoder, from hub ids or local folders
  named by ``backbone.prior_model`` and ``backbone.decoder_model``.

``kandinsky_fixture`` builds random Kandinsky components at toy size in the hub's folder
layout: a test fixture for the ``kandinsky22`` code path, not a backbone to pick.
"""

from __future__ import annotations

from nextframe.backbones.base import Backbone, TextEncoding
from nextframe.config import BackboneParams
from nextframe.errors import UserError
from nextframe.store import EmbeddingInfo

__all__ = ["Backbone", "TextEncoding", "check_compatible", "load_backbone"]


def check_compatible(backbone: Backbone, info: EmbeddingInfo) -> None:
    """Refuse to mix a backbone with embeddings another backbone made."""
    if backbone.name != info.backbone or backbone.dim != info.dim:
        raise UserError(
            f"the embeddings were made by backbone {info.backbone!r} (D={info.dim}) but "
            f"backbone.name is {backbone.name!r} (D={backbone.dim}); rerun embed (dvc repro)"
        )


def load_backbone(params: BackboneParams) -> Backbone:
    """The backbone named by ``params.name``, on ``params.device``."""
    if params.name == "toy":
        from nextframe.backbones.toy import load_toy
        from nextframe.device import resolve_device

        return load_toy(device=resolve_device(params.device))
    from nextframe.backbones.unclip import load_unclip

    return load_unclip(
        params.name,
        params.prior_model,
        params.decoder_model,
        revision=params.revision,
        device=params.device,
        dtype=params.dtype,
        prior_steps=params.prior_steps,
        prior_guidance=params.prior_guidance,
        seed=params.seed,
    )
