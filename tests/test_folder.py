"""The folder source: a CSV of path,caption[,split] plus videos on disk, to manifest rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nextframe.config import DownloadParams, FolderParams, Params
from nextframe.data.folder import collect
from nextframe.data.video import read_video, write_video
from nextframe.errors import UserError
from nextframe.pipeline import download as download_stage
from nextframe.store import read_manifest


def clip(n_frames: int = 5) -> np.ndarray:
    frames = np.zeros((n_frames, 32, 32, 3), np.uint8)
    for index in range(n_frames):
        frames[index, 8:16, 4 * index : 4 * index + 8] = (200, 30, 30)
    return frames


@pytest.fixture
def videos(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A repository-like working directory with videos/ holding three real clips."""
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "videos"
    write_video(root / "a.mp4", clip(), 8.0)
    write_video(root / "sub dir" / "b.gif", clip(), 8.0)
    write_video(root / "sub_dir" / "b.gif", clip(), 8.0)  # slugs to the same id as above
    return root


def download(params: DownloadParams, out_dir: Path):
    return download_stage.run(out_dir, Params(download=params))


def params(csv_text: str, seed: int = 0) -> DownloadParams:
    Path("videos/captions.csv").write_text(csv_text)
    folder = FolderParams(root="videos", csv="videos/captions.csv")
    return DownloadParams(source="folder", seed=seed, folder=folder)


def test_round_trip_from_csv_to_manifest(videos: Path, tmp_path: Path) -> None:
    download_params = params(
        "path,caption,split\n"
        "a.mp4,a red block moves right,train\n"
        "sub dir/b.gif, the same block as a gif ,VAL\n"
        "sub_dir/b.gif,another copy,test\n"
    )
    summary = download(download_params, tmp_path / "raw")
    manifest = read_manifest(tmp_path / "raw" / "manifest.parquet")
    assert manifest.clip_id.tolist() == ["a", "sub_dir_b", "sub_dir_b-2"]
    assert manifest.caption.tolist()[1] == "the same block as a gif"
    assert manifest.split.tolist() == ["train", "val", "test"]
    assert set(manifest.status) == {"ok"} and set(manifest.source) == {"folder"}
    assert manifest.path.tolist()[0] == "videos/a.mp4"
    for path in manifest.path:
        assert read_video(tmp_path / "raw" / path).n_frames == 5
    assert summary.metrics()["clips_ok"] == 3


def test_rerun_keeps_placed_videos(videos: Path, tmp_path: Path) -> None:
    download_params = params("path,caption\na.mp4,a block\n")
    collect(download_params, tmp_path / "raw")
    placed = tmp_path / "raw" / "videos" / "a.mp4"
    before = placed.stat().st_mtime_ns, placed.stat().st_ino
    collect(download_params, tmp_path / "raw")
    assert (placed.stat().st_mtime_ns, placed.stat().st_ino) == before


def test_without_split_column_paths_get_seeded_splits(videos: Path, tmp_path: Path) -> None:
    rows = "".join(f"a.mp4,caption {index}\n" for index in range(3))
    result = collect(params("path,caption\n" + rows + "sub dir/b.gif,x\n"), tmp_path / "raw")
    splits = [row.split for row in result.rows]
    assert len(set(splits[:3])) == 1  # captions of one video share its split
    assert set(splits) <= {"train", "val", "test"}


def test_escaping_and_missing_paths_are_failed_rows(videos: Path, tmp_path: Path) -> None:
    (tmp_path / "escape.mp4").write_bytes(b"outside")
    csv = "path,caption\n../escape.mp4,out\n/etc/passwd,abs\nnope.mp4,gone\na.mp4,fine\n"
    result = collect(params(csv), tmp_path / "raw")
    statuses = [row.status for row in result.rows]
    assert statuses == ["failed:outside_root", "failed:outside_root", "failed:missing", "ok"]
    assert [row.path for row in result.rows][:3] == ["", "", ""]
    assert not (tmp_path / "raw" / "videos" / "escape.mp4").exists()


def test_a_bad_split_value_names_its_line(videos: Path, tmp_path: Path) -> None:
    csv = "path,caption,split\na.mp4,ok,train\na.mp4,bad,holdout\n"
    with pytest.raises(UserError, match=r"captions\.csv line 3: split must be .*'holdout'"):
        collect(params(csv), tmp_path / "raw")


def test_a_missing_column_names_the_param_and_column(videos: Path, tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"download\.folder\.csv: .* no 'caption' column"):
        collect(params("path,text\na.mp4,hello\n"), tmp_path / "raw")


def test_missing_csv_and_root_are_clear_errors(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    folder = FolderParams(root="nowhere", csv="nowhere.csv")
    with pytest.raises(UserError, match=r"download\.folder\.root: nowhere"):
        collect(DownloadParams(source="folder", folder=folder), tmp_path / "raw")
    (tmp_path / "nowhere").mkdir()
    with pytest.raises(UserError, match=r"download\.folder\.csv: nowhere\.csv not found"):
        collect(DownloadParams(source="folder", folder=folder), tmp_path / "raw")


def test_no_usable_clip_still_writes_the_manifest(videos: Path, tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"no usable clip out of 2 \(missing: 2\)"):
        download(params("path,caption\nx.mp4,a\ny.mp4,b\n"), tmp_path / "raw")
    manifest = read_manifest(tmp_path / "raw" / "manifest.parquet")
    assert manifest.status.tolist() == ["failed:missing", "failed:missing"]


def test_spellings_of_one_file_share_a_split_and_repeats_are_dropped(
    videos: Path, tmp_path: Path
) -> None:
    (videos / "link.mp4").symlink_to(videos / "a.mp4")
    csv = (
        "path,caption\n./a.mp4,one\na.mp4,two\nsub dir/../a.mp4,three\nlink.mp4,four\n"
        "a.mp4,one\nsub dir/b.gif,other\nsub_dir/b.gif,another\n"
    )
    for seed in range(6):
        result = collect(params(csv, seed=seed), tmp_path / "raw")
        rows = {row.caption: row for row in result.rows}
        assert sorted(rows) == ["another", "four", "one", "other", "three", "two"]
        assert len({rows[c].split for c in ("one", "two", "three", "four")}) == 1
        assert rows["one"].clip_id == "a" and rows["one"].status == "ok"
        assert result.metrics["duplicate_rows"] == 1.0
        assert "1 CSV row(s) repeating a file and caption dropped" in result.notes


def test_one_file_given_two_splits_names_both_lines(videos: Path, tmp_path: Path) -> None:
    csv = "path,caption,split\na.mp4,x,train\nsub_dir/b.gif,y,val\n./a.mp4,z,test\n"
    with pytest.raises(
        UserError,
        match=r"a\.mp4 is one file given several splits .*line 2 \(train\), line 4 \(test\)",
    ):
        collect(params(csv), tmp_path / "raw")


def test_every_file_is_probed_before_it_is_ok(videos: Path, tmp_path: Path) -> None:
    (videos / "noise.mp4").write_bytes(np.random.default_rng(0).bytes(5000))
    (videos / "empty.mp4").write_bytes(b"")
    (videos / "notes.txt").write_text("not a video")
    write_video(videos / "short.mp4", clip(2), 8.0)
    csv = "path,caption\nnoise.mp4,n\nempty.mp4,e\nnotes.txt,t\nshort.mp4,s\na.mp4,fine\n"
    result = collect(params(csv), tmp_path / "raw")
    assert [(row.caption, row.status) for row in result.rows] == [
        ("n", "failed:undecodable"),
        ("e", "failed:empty_file"),
        ("t", "failed:not_a_video"),
        ("s", "failed:too_few_frames"),
        ("fine", "ok"),
    ]
    assert [p.name for p in (tmp_path / "raw" / "videos").iterdir()] == ["a.mp4"]


def test_a_huge_frame_is_refused_by_the_pixel_budget(videos: Path, tmp_path: Path) -> None:
    download_params = params("path,caption\na.mp4,fine\n")
    small = download_params.model_copy(update={"max_pixels": 32 * 32 * 3})
    assert [row.status for row in collect(small, tmp_path / "raw").rows] == [
        "failed:too_many_pixels"
    ]


def test_a_csv_that_is_not_utf8_names_its_line(videos: Path, tmp_path: Path) -> None:
    Path("videos/captions.csv").write_bytes("path,caption\na.mp4,un café\n".encode("latin-1"))
    folder = FolderParams(root="videos", csv="videos/captions.csv")
    with pytest.raises(UserError, match=r"captions\.csv line 2: expected UTF-8 .* byte 0xe9"):
        collect(DownloadParams(source="folder", folder=folder), tmp_path / "raw")


def test_a_byte_order_mark_does_not_hide_the_header(videos: Path, tmp_path: Path) -> None:
    result = collect(params("\ufeffpath,caption\na.mp4,fine\n"), tmp_path / "raw")
    assert [row.status for row in result.rows] == ["ok"]
