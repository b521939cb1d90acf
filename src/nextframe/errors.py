"""Errors meant for the person running a stage, and the one place that reports them.

A stage that fails on bad input should say what it expected, what it found and what to
do, in one line, and exit non-zero without a traceback; a traceback is for our bugs.
Ctrl-C is not an error either: the stage says it was interrupted and exits with 130, the
shell's status for SIGINT, after the code it interrupted has removed its partial files.
SIGTERM (what a scheduler, ``kill`` or a CI timeout sends) takes the same way: it is
raised as ``Terminated``, a ``KeyboardInterrupt``, so every cleanup that Ctrl-C runs runs
(partial files removed, the MLflow run marked KILLED), and the exit status is 143.
"""

from __future__ import annotations

import functools
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import ParamSpec, TypeVar

from nextframe.config import ParamsError

P = ParamSpec("P")
R = TypeVar("R")


class UserError(RuntimeError):
    """A problem with the user's input or environment, reported without a traceback."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C would be, so that it is cleaned up the same way."""


USER_ERROR_STATUS = 2
INTERRUPTED_STATUS = 130  # 128 + SIGINT, what shells report for Ctrl-C
TERMINATED_STATUS = 143  # 128 + SIGTERM


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises ``Terminated`` in the main thread (Python's default
    for SIGTERM is to die at once, with no cleanup). Elsewhere than the main thread, where
    no signal handler can be set, it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def report_user_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Wrap a command so user errors print cleanly and exit with status 2, Ctrl-C with 130
    and SIGTERM with 143, both after the interrupted code has cleaned up."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            with sigterm_as_interrupt():
                return func(*args, **kwargs)
        except (ParamsError, UserError, FileNotFoundError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise SystemExit(USER_ERROR_STATUS) from None
        except Terminated:
            print("terminated: partial outputs were removed; rerun to resume", file=sys.stderr)
            raise SystemExit(TERMINATED_STATUS) from None
        except KeyboardInterrupt:
            print("interrupted: partial outputs were removed; rerun to resume", file=sys.stderr)
            raise SystemExit(INTERRUPTED_STATUS) from None

    return wrapper
