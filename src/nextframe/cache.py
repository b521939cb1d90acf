"""The machine-wide cache for what is expensive to get and not an experiment's output.

The kandinsky22 test fixture, downloaded archives and index files live here, outside every DVC
output: DVC deletes a stage's outputs before rerunning it, so a 3 GiB archive kept inside
``data/raw`` would be fetched again on every change, and pushed to the remote on every push.
``$NEXTFRAME_CACHE`` moves it (default ``~/.cache/nextframe``).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from urllib.parse import urlparse


def cache_root() -> Path:
    return Path(os.environ.get("NEXTFRAME_CACHE", Path.home() / ".cache" / "nextframe"))


def download_path(url: str) -> Path:
    """Where the file at ``url`` is kept: one name per URL, the URL's own file name last."""
    name = Path(urlparse(url).path).name or "index"
    digest = hashlib.sha1(url.encode()).hexdigest()[:12]
    return cache_root() / "downloads" / f"{digest}-{name}"
