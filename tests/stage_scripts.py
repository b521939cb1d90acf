"""Load a DVC stage script (``stages/<name>.py``) as a module, to drive its Typer app in-process."""

from __future__ import annotations

import importlib.util
import signal
from pathlib import Path
from types import ModuleType

STAGES_DIR = Path(__file__).resolve().parents[1] / "stages"


def load_stage(name: str) -> ModuleType:
    """The stage scripts are not a package (DVC runs them as files), so import them by path."""
    spec = importlib.util.spec_from_file_location(f"{name}_stage", STAGES_DIR / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def default_sigint() -> None:
    """``preexec_fn`` of a stage started to be interrupted: a shell without job control
    starts background jobs (``.ci/run &``) with SIGINT ignored, every child inherits that,
    and Python installs no KeyboardInterrupt handler then; the test must send the SIGINT a
    user's terminal would, to a process that listens for it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
