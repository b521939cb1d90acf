"""The figures of the README's comparison tables: every method, overall and per motion
class, in ``metrics/evaluate_methods.json``.

The headline file must stay small for ``dvc exp show`` whatever the number of methods,
and the full file lives in the DVC cache (not git), so the README's tables, which
``scripts/readme_results.py --check`` compares with committed numbers, read this file: a
git-tracked subset of the full file. Its keys name the metric as the headline does, with
the scoring decoder left out (``M.step.direction_acc`` is ``M.step.<X>.direction_acc`` of
the full file, X the decoder the headline scores): for every method M of
``generate.methods`` and the decoded truth, ``M.step.<metric>`` of ``OVERALL`` and
``splitter-M.step.<metric>`` of ``PAIRED``, and ``by_class.<c>.`` the same for ``BY_CLASS``
and ``by_class.<c>.n_clips``; each with its ``.n``, ``.ci_low`` and ``.ci_high`` where the
full file has them.
"""

from __future__ import annotations

from nextframe.metrics import REFERENCE
from nextframe.motion_classes import CLASS_PREFIX, CLASSES

TRUTH = "truth"  # the decoded true embeddings: the decoder's ceiling
EMBEDDING_METRICS = ("cos_mean", "motion_mean")  # scored on embeddings (no decoder)
OVERALL = (
    "cos_mean",
    "motion_mean",
    "factor_motion",
    "direction_acc",
    "direction_acc_45",
    "displacement_err",
    "size_change_err",
)
PAIRED = ("cos_mean", "factor_motion")
BY_CLASS = ("cos_mean", "factor_motion", "direction_acc")
SUFFIXES = ("", ".n", ".ci_low", ".ci_high")


def full_key(name: str, metric: str, decoder: str) -> str:
    """``name.step.metric`` as the full file spells it (decoded metrics carry the decoder)."""
    return (
        f"{name}.step.{metric}"
        if metric in EMBEDDING_METRICS
        else f"{name}.step.{decoder}.{metric}"
    )


def method_table(metrics: dict[str, float], decoder: str, methods: list[str]) -> dict[str, float]:
    """The module doc's keys, from the full file's ``metrics``."""
    table: dict[str, float] = {}

    def copy(prefix: str, name: str, metric: str) -> None:
        for suffix in SUFFIXES:
            source = f"{prefix}{full_key(name, metric, decoder)}{suffix}"
            if source in metrics:
                table[f"{prefix}{name}.step.{metric}{suffix}"] = metrics[source]

    names = [*methods, TRUTH]
    others = [m for m in methods if m != REFERENCE]
    for prefix in ["", *(f"{CLASS_PREFIX}.{c}." for c in CLASSES)]:
        if prefix and f"{prefix}n_clips" not in metrics:
            continue
        if prefix:
            table[f"{prefix}n_clips"] = metrics[f"{prefix}n_clips"]
        for metric in BY_CLASS if prefix else OVERALL:
            for name in names:
                copy(prefix, name, metric)
        for metric in PAIRED:
            for method in others:
                copy(prefix, f"{REFERENCE}-{method}", metric)
    return table
