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

__all__ = ["Backbone", "TextEncoding", "load_backbone"]


def load_backbone(params: BackboneParams) -> Backbone:
    """The backbone named by ``params.name``, on ``params.device``."""
    if params.name == "toy":
        from nextframe.backbones.toy import load_toy
        from nextframe.backbones.unclip import resolve_device

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
