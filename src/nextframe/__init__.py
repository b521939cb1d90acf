"""nextframe: text-to-video by predicting how a CLIP image embedding moves in time."""

import logging


def _not_the_torchvision_notice(record: logging.LogRecord) -> bool:
    """diffusers' Kandinsky pipelines import ``CLIPImageProcessor``, and transformers 5 warns
    on every run that it falls back to the PIL processor without torchvision. nextframe
    loads the PIL processor on purpose (same pixels whatever is installed), so the notice
    only misleads; every other transformers message stays."""
    return "requires torchvision" not in record.getMessage()


logging.getLogger("transformers.utils.import_utils").addFilter(_not_the_torchvision_notice)
