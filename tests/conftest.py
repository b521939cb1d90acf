"""Test-session environment: everything offline, every side effect under a temporary folder.

Set at import time (not in a fixture) so that stage subprocesses started by tests inherit
the same MLflow store, model cache and offline switches.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

# shared fixtures (fake_backbone, ...) live in tests/fixtures/
pytest_plugins = ["fixtures.project"]

_SESSION_DIR = Path(tempfile.mkdtemp(prefix="nextframe-tests-"))
os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{_SESSION_DIR / 'mlflow.db'}"
os.environ.setdefault("NEXTFRAME_CACHE", str(_SESSION_DIR / "cache"))
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["DO_NOT_TRACK"] = "1"
os.environ["DVC_NO_ANALYTICS"] = "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Slow modules first: pytest-xdist (``-n 2 --dist loadfile`` in pyproject.toml) hands
    whole modules to its workers in this order, so the end-to-end ``dvc repro`` (most of
    the suite's time) starts at once on one worker instead of becoming the run's tail."""

    def slowness(item: pytest.Item) -> int:
        if item.module.__name__ == "test_pipeline_e2e":
            return 0
        return 1 if item.get_closest_marker("e2e") else 2

    items.sort(key=slowness)  # stable: each module keeps its own order


def pytest_sessionfinish(session, exitstatus) -> None:
    shutil.rmtree(_SESSION_DIR, ignore_errors=True)


@pytest.fixture
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A download cache of this test's own: a URL (host:port) seen by an earlier test may
    name different bytes now, so cached downloads must not leak between tests."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("NEXTFRAME_CACHE", str(cache))
    return cache
