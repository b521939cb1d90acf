"""Errors meant for the person running a stage, and the one place that reports them.

A stage that fails on bad input should say what it expected, what it found and what to
do, in one line, and exit non-zero without a traceback; a traceback is for our bugs.
Ctrl-C is not an error either: the stage says it was interrupted and exits with 130, the
shell's status for SIGINT, after the code it interrupted has removed its partial files.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from nextframe.config import ParamsError

P = ParamSpec("P")
R = TypeVar("R")


class UserError(RuntimeError):
    """A problem with the user's input or environment, reported without a traceback."""


USER_ERROR_STATUS = 2
INTERRUPTED_STATUS = 130  # 128 + SIGINT, what shells report for Ctrl-C


def report_user_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Wrap a command so user errors print cleanly and exit with status 2, Ctrl-C with 130."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except (ParamsError, UserError, FileNotFoundError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise SystemExit(USER_ERROR_STATUS) from None
        except KeyboardInterrupt:
            print("interrupted: partial outputs were removed; rerun to resume", file=sys.stderr)
            raise SystemExit(INTERRUPTED_STATUS) from None

    return wrapper
