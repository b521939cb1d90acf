"""The msrvtt and ucf101 sources on small hand-made folders in their releases' layouts."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nextframe.config import parse_params
from nextframe.data.video import write_video
from nextframe.errors import UserError
from nextframe.pipeline import download


def tiny_video(path: Path, n_frames: int = 5, shade: int = 0) -> Path:
    """A 32 px clip written by the project's writer. UCF-101's files are AVI; the writer
    makes MP4, and the readers go by content, so an MP4 stream under an .avi name serves."""
    frames = np.full((n_frames, 32, 32, 3), shade, dtype=np.uint8)
    frames[:, :, :, 0] = np.arange(n_frames, dtype=np.uint8)[:, None, None] * 40
    path.parent.mkdir(parents=True, exist_ok=True)
    written = path.with_suffix(".mp4")
    write_video(written, frames, fps=8)
    if written != path:
        os.replace(written, path)
    return path


def run_download(tmp_path: Path, source: str, settings: dict) -> pd.DataFrame:
    params = parse_params({"download": {"source": source, source: settings}})
    download.run(tmp_path / "raw", params)
    return pd.read_parquet(tmp_path / "raw" / "manifest.parquet").set_index("clip_id")


@pytest.fixture
def msrvtt(tmp_path: Path) -> Path:
    root = tmp_path / "MSRVTT"
    for number in range(6):
        tiny_video(root / "videos" / "all" / f"video{number}.mp4", shade=number * 30)
    splits = ["train", "train", "validate", "test", "test", "test"]
    videos = [
        {"video_id": f"video{n}", "split": split, "category": n % 3, "id": n}
        for n, split in enumerate(splits)
    ]
    videos.append({"video_id": "video9", "split": "test", "category": 1, "id": 9})  # no file
    sentences = []
    for n in [*range(6), 9]:
        # listed out of order: the rule picks the lowest sen_id, not the first line
        sentences.append({"video_id": f"video{n}", "sen_id": 100 + n, "caption": f"later {n}"})
        sentences.append({"video_id": f"video{n}", "sen_id": n, "caption": f" a  clip {n} "})
    annotation = root / "annotation"
    annotation.mkdir()
    (annotation / "MSRVTT_data.json").write_text(
        json.dumps({"videos": videos, "sentences": sentences})
    )
    (annotation / "MSRVTT_JSFUSION_test.csv").write_text(
        "key,vid_key,video_id,sentence\n"
        "ret0,msr4,video4,a man is cooking\n"
        "ret1,msr5,video5,a dog runs on grass\n"
    )
    return root


def test_msrvtt_official_split_and_first_sentence(msrvtt: Path, tmp_path: Path) -> None:
    settings = {
        "videos": str(msrvtt / "videos" / "all"),
        "annotations": str(msrvtt / "annotation" / "MSRVTT_data.json"),
    }
    manifest = run_download(tmp_path, "msrvtt", settings)
    assert manifest.loc["video0", "caption"] == "a clip 0"
    assert manifest["split"].to_dict() == {
        "video0": "train",
        "video1": "train",
        "video2": "val",
        "video3": "test",
        "video4": "test",
        "video5": "test",
        "video9": "test",
    }
    assert manifest.loc["video9", "status"] == "failed:missing"
    assert manifest.loc["video2", "label"] == "2"
    placed = tmp_path / "raw" / manifest.loc["video3", "path"]
    assert placed.is_file() and placed.stat().st_size > 0


def test_msrvtt_1k_a_test_list_with_the_json(msrvtt: Path, tmp_path: Path) -> None:
    annotation = msrvtt / "annotation"
    settings = {
        "videos": str(msrvtt / "videos" / "all"),
        "annotations": str(annotation / "MSRVTT_data.json"),
        "test_csv": str(annotation / "MSRVTT_JSFUSION_test.csv"),
    }
    manifest = run_download(tmp_path, "msrvtt", settings)
    assert sorted(manifest.index[manifest["split"] == "test"]) == ["video4", "video5"]
    assert manifest.loc["video4", "caption"] == "a man is cooking"  # the CSV's sentence
    assert manifest.loc["video3", "split"] == "train"  # official test, not in 1k-A: trains
    assert manifest.loc["video2", "split"] == "val"


def test_msrvtt_test_csv_alone_gives_test_clips(msrvtt: Path, tmp_path: Path) -> None:
    settings = {
        "videos": str(msrvtt / "videos" / "all"),
        "annotations": str(msrvtt / "annotation" / "MSRVTT_JSFUSION_test.csv"),
    }
    manifest = run_download(tmp_path, "msrvtt", settings)
    assert manifest["split"].to_dict() == {"video4": "test", "video5": "test"}
    assert manifest.loc["video5", "caption"] == "a dog runs on grass"


def test_msrvtt_bad_annotations_name_the_param(msrvtt: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"videos": []}))
    settings = {"videos": str(msrvtt / "videos" / "all"), "annotations": str(bad)}
    with pytest.raises(UserError, match=r"download\.msrvtt\.annotations.*'sentences'"):
        run_download(tmp_path, "msrvtt", settings)
    with pytest.raises(UserError, match=r"download\.msrvtt\.videos"):
        run_download(tmp_path, "msrvtt", {"videos": str(tmp_path / "none")})


@pytest.fixture
def ucf101(tmp_path: Path) -> Path:
    root = tmp_path / "UCF-101"
    for label in ("ApplyEyeMakeup", "HandstandPushups"):
        file_label = "HandStandPushups" if label == "HandstandPushups" else label
        for group in (1, 2, 8, 9, 10):
            for clip in (1, 2):
                tiny_video(root / label / f"v_{file_label}_g{group:02d}_c{clip:02d}.avi")
    (root / "ApplyEyeMakeup" / "notes.txt").write_text("not a clip")
    lists = tmp_path / "ucfTrainTestlist"
    lists.mkdir()
    (lists / "classInd.txt").write_text("1 ApplyEyeMakeup\n2 HandstandPushups\n")
    test_lines = [
        f"{label}/v_{file_label}_g{group:02d}_c{clip:02d}.avi"
        for label, file_label in (
            ("ApplyEyeMakeup", "ApplyEyeMakeup"),
            ("HandstandPushups", "HandStandPushups"),
        )
        for group in (1, 2)
        for clip in (1, 2)
    ]
    test_lines.append("ApplyEyeMakeup/v_ApplyEyeMakeup_g03_c01.avi")  # listed, not on disk
    (lists / "testlist01.txt").write_text("\n".join(test_lines) + "\n")
    return tmp_path


def test_ucf101_official_test_split_group_val_and_template(ucf101: Path, tmp_path: Path) -> None:
    settings = {"root": str(ucf101 / "UCF-101"), "lists": str(ucf101 / "ucfTrainTestlist")}
    manifest = run_download(tmp_path, "ucf101", settings)
    assert manifest.loc["v_ApplyEyeMakeup_g01_c01", "caption"] == "a person doing apply eye makeup"
    assert (
        manifest.loc["v_HandStandPushups_g02_c02", "caption"] == "a person doing handstand pushups"
    )
    assert manifest.loc["v_HandStandPushups_g02_c02", "label"] == "HandstandPushups"
    groups = manifest.index.str.extract(r"_g(\d+)_", expand=False).astype(int)
    by_group = manifest.assign(group=groups.to_numpy()).groupby("group")["split"].unique()
    assert all(len(splits) == 1 for splits in by_group)  # no actor in two splits
    assert {int(g) for g in by_group.index[by_group.str[0] == "test"]} == {1, 2, 3}
    assert {by_group[g][0] for g in (8, 9, 10)} == {"train", "val"}
    assert manifest.loc["v_ApplyEyeMakeup_g03_c01", "status"] == "failed:missing"
    assert (manifest["status"] == "ok").sum() == 20
    placed = tmp_path / "raw" / manifest.loc["v_ApplyEyeMakeup_g08_c01", "path"]
    assert placed.is_file()


def test_ucf101_classes_and_clips_per_class(ucf101: Path, tmp_path: Path) -> None:
    settings = {
        "root": str(ucf101 / "UCF-101"),
        "lists": str(ucf101 / "ucfTrainTestlist"),
        "classes": ["HandstandPushups"],
        "clips_per_class": 1,
    }
    manifest = run_download(tmp_path, "ucf101", settings)
    assert set(manifest["label"]) == {"HandstandPushups"}
    assert manifest.groupby("split").size().max() == 1
    with pytest.raises(UserError, match=r"download\.ucf101\.classes: unknown class\(es\) Yoga"):
        run_download(tmp_path, "ucf101", {**settings, "classes": ["Yoga"]})
