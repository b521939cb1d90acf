"""Progress output for every stage: a live bar on a terminal, a few plain lines in a log.

On a terminal (stderr is a TTY) a tqdm bar redraws in place, as tqdm always does. Off a
terminal (CI, ``nohup``, a cluster job, DVC driven by a pipeline runner) every redraw is
one more carriage-return update in the log file: the train stage alone wrote thousands.
There each bar writes one line when it starts, then at most one line per
``LOG_INTERVAL_S`` seconds *and* per ``LOG_FRACTION`` of its total, and one when it ends,
each a plain line without the bar's blocks; so a bar writes at most a dozen lines however
long it runs, and a whole default ``dvc repro`` log stays a page or two long.

Every progress bar in the package comes from ``progress_bar``; nothing else imports tqdm.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Iterable
from typing import TextIO, TypeVar

from tqdm import tqdm

LOG_INTERVAL_S = 30.0  # off a terminal: at most one progress line per 30 s ...
LOG_FRACTION = 0.1  # ... and per 10% of the total
LOG_FORMAT = (
    "{desc}: {percentage:3.0f}% {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}{postfix}]"
)
LOG_FORMAT_NO_TOTAL = "{desc}: {n_fmt} [{elapsed}, {rate_fmt}{postfix}]"

Item = TypeVar("Item")


class LineStream:
    """A file for tqdm that writes each redraw as its own line.

    tqdm starts every redraw with a carriage return (to overwrite the bar in place) and
    ends a finished bar with a newline; in a log each redraw becomes one line instead.
    """

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> None:
        for part in re.split(r"[\r\n]", text):
            if part.strip():
                self.stream.write(part.rstrip() + "\n")

    def flush(self) -> None:
        self.stream.flush()


def on_terminal(stream: TextIO) -> bool:
    """Whether ``stream`` is a terminal (a closed or file-less stream is not)."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def progress_bar(
    iterable: Iterable[Item] | None = None,
    *,
    total: int | None = None,
    desc: str,
    unit: str = "it",
    leave: bool = True,
    disable: bool = False,
    stream: TextIO | None = None,
) -> tqdm:
    """A tqdm bar over ``iterable`` (or of ``total`` steps, updated by hand) on ``stream``
    (stderr by default), drawn as the module doc says for a terminal or a log.

    ``leave=False`` clears the bar when it ends on a terminal; in a log the last line always
    stays, so the log says each phase finished and how long it took.
    """
    stream = stream or sys.stderr
    if on_terminal(stream):
        return tqdm(
            iterable, total=total, desc=desc, unit=unit, leave=leave, disable=disable, file=stream
        )
    if total is None and iterable is not None and hasattr(iterable, "__len__"):
        total = len(iterable)
    return tqdm(
        iterable,
        total=total,
        desc=desc,
        unit=unit,
        leave=True,
        disable=disable,
        file=LineStream(stream),
        mininterval=LOG_INTERVAL_S,
        maxinterval=math.inf,  # tqdm's monitor would otherwise force a redraw every 10 s
        miniters=max(1, math.ceil(total * LOG_FRACTION)) if total else 1,
        bar_format=LOG_FORMAT if total else LOG_FORMAT_NO_TOTAL,
    )
