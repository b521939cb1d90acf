"""Does the splitter's prediction change with time as much as the clip does?

On the committed run's test clips: the cosine distance between the step rollout's
prediction at the last frame's rise and at the first step, against the same distance
between the true frames (issue 10's bar: at least half). Reads the pipeline's outputs;
run after ``dvc repro``.

    python benchmarks/time_sensitivity.py [--method splitter]
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import torch
import typer
from torch.nn import functional as F

from nextframe.pipeline.evaluate import held_out_clips, true_frames
from nextframe.store import read_image_embeddings, read_rollouts

app = typer.Typer(add_completion=False)


@app.command()
def main(
    method: Annotated[str, typer.Option(help="a method of generate.methods")] = "splitter",
    root: Annotated[Path, typer.Option(help="the repository whose outputs to read")] = Path("."),
) -> None:
    held_out, steps = held_out_clips(root / "data/generated")  # the clips evaluate scores
    clip_ids = [clip["clip_id"] for clip in held_out]
    images = read_image_embeddings(root / "data/embeddings/images.parquet", clip_ids)
    truth, n_frames = true_frames(images, clip_ids)  # [C, K, D], [C]
    rolled = read_rollouts(root / "data/generated/predictions.parquet", clip_ids, steps)
    predicted = F.normalize(rolled[(method, "step")].float(), dim=-1)  # [C, K, D]
    truth = F.normalize(truth.float(), dim=-1)
    rows, last = torch.arange(len(clip_ids)), n_frames - 1

    def change(frames: torch.Tensor) -> torch.Tensor:  # [C]: 1 - cos(last, step 1)
        return 1 - (frames[rows, last] * frames[rows, 1]).sum(-1)

    predicted_change, true_change = change(predicted), change(truth)
    ratio = predicted_change / true_change
    typer.echo(
        json.dumps(
            {
                "method": method,
                "clips": len(clip_ids),
                "predicted_change": round(float(predicted_change.mean()), 4),
                "true_change": round(float(true_change.mean()), 4),
                "ratio_of_means": round(float(predicted_change.mean() / true_change.mean()), 4),
                "median_ratio": round(float(ratio.median()), 4),
                "clips_at_least_half": round(float((ratio >= 0.5).float().mean()), 4),
            }
        )
    )


if __name__ == "__main__":
    app()
