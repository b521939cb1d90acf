"""Ctrl-C during a download, as a user would press it: a real SIGINT to a process that is
fetching GIFs from a local server whose bodies trickle, stall or fail with backoff; and
SIGTERM, what a scheduler, ``kill`` or a CI timeout sends, the same way.

The download stage, run as DVC runs it, must stop within seconds (not after every
transfer and retry has run its course), leave no ``.part`` or scratch file, keep the GIFs
already verified, mark its MLflow run KILLED and exit with status 130 (SIGTERM: 143).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from http_server import LocalServer, Route
from stage_scripts import default_sigint
from test_tgif import gif_bytes, moving, publish

REPO = Path(__file__).resolve().parents[1]


def wait_for(condition, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "the download never reached the state to interrupt"
        time.sleep(0.05)


@pytest.mark.parametrize(
    ("signum", "status", "word"),
    [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")],
    ids=["SIGINT", "SIGTERM"],
)
def test_a_signal_stops_within_seconds_and_leaves_only_verified_files(
    tmp_path: Path, signum: int, status: int, word: str
) -> None:
    out_dir = tmp_path / "raw"
    with LocalServer() as server:
        gifs = {
            f"good{i}": Route(gif_bytes(tmp_path, moving(6, offset=i), f"good{i}"))
            for i in range(2)
        }
        # 200 KB at 1 KiB per second, headers that never come, a 503 retried after 30 s
        gifs.update({f"slow{i}": Route(os.urandom(200_000), trickle_s=1.0) for i in range(3)})
        gifs["stalled"] = Route(b"GIF89a", delay_s=120)
        gifs["down"] = Route(statuses=[503])
        published = publish(server, gifs, {})
        http = {"workers": 8, "timeout_s": 60, "retries": 3, "backoff_s": 30, "max_bytes": 10**7}
        tgif = {"tsv_url": published["tsv"], "split_urls": {}, "min_frames": 4, "http": http}
        params_file = tmp_path / "params.yaml"
        params_file.write_text(yaml.safe_dump({"download": {"source": "tgif", "tgif": tgif}}))
        store = f"sqlite:///{tmp_path / 'mlflow.db'}"
        env = {
            **os.environ,
            "NEXTFRAME_CACHE": str(tmp_path / "cache"),
            "MLFLOW_TRACKING_URI": store,
        }
        stage = [sys.executable, "stages/download.py", str(out_dir), "--params", str(params_file)]
        with (tmp_path / "log.txt").open("w") as log:
            process = subprocess.Popen(
                stage,
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=default_sigint,
            )
            try:
                wait_for(
                    lambda: (
                        all(server.count(f"/gifs/{name}.gif") for name in gifs)
                        and len(list((out_dir / "videos").glob("*.gif"))) == 2
                    ),
                    timeout_s=120,
                )
                time.sleep(0.5)  # let the slow bodies start arriving into their .part files
                interrupted = time.monotonic()
                process.send_signal(signum)
                process.wait(timeout=60)
                stop_s = time.monotonic() - interrupted
            finally:
                process.kill()
    log_text = (tmp_path / "log.txt").read_text()
    assert process.returncode == status, log_text
    assert word in log_text and "Traceback" not in log_text
    assert stop_s < 5, f"took {stop_s:.1f} s to stop"
    left = sorted(str(p.relative_to(out_dir)) for p in out_dir.rglob("*") if not p.is_dir())
    assert len(left) == 2 and all(name.startswith("videos/tgif-") for name in left), left
    assert all(name.endswith(".gif") for name in left)
    import mlflow

    client = mlflow.tracking.MlflowClient(tracking_uri=store)
    found = client.search_runs([client.get_experiment_by_name("nextframe").experiment_id])
    assert sorted((r.data.tags["nextframe.role"], r.info.status) for r in found) == [
        ("pipeline", "KILLED"),
        ("stage", "KILLED"),
    ]
