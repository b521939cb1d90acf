"""``toy``: a small unCLIP that has learned the synthetic world (the offline default).

- ``recipe.py``: everything the weights depend on, and its digest.
- ``corpus.py``: the training clips (the synthetic generator with the recipe's seed), as
  the pipeline would read them (MP4 round trip), with the truth about every frame.
- ``features.py``: the code of what a frame shows, which the image tower is taught.
- ``model.py``: the networks (image encoder, decoder, text tower with prior).
- ``build.py``: training, deterministic; ``build_weights`` writes the weights file.
- ``backbone.py``: ``ToyBackbone`` (the ``Backbone`` interface) and ``load_toy``.
"""

from nextframe.backbones.toy.backbone import WEIGHTS, ToyBackbone, load_toy, write_weights
from nextframe.backbones.toy.recipe import RECIPE, Recipe

__all__ = ["RECIPE", "WEIGHTS", "Recipe", "ToyBackbone", "load_toy", "write_weights"]
