"""Progress of long work: a live bar on a terminal, a few log lines anywhere else.

A tqdm bar redraws itself many times a second. On a terminal that is one line;
in a CI log or a file every redraw is a new line. So `progress_bar` returns a
tqdm bar only when stderr is a terminal, and otherwise a `LogProgress`, which
logs a plain line at each tenth of the total (or every `log_seconds` when the
total is unknown) and a last line when it closes.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, Generic, TypeVar

LOG = logging.getLogger("slipway.progress")
T = TypeVar("T")

# Without a known total: one line per this many seconds.
LOG_SECONDS = 30.0
# With a total: one line per 1/LOG_STEPS of it (and the last one).
LOG_STEPS = 10


class LogProgress(Generic[T]):
    """The subset of tqdm's interface that Slipway uses, written as log lines.

    Iterate it (over `iterable`), or call `update(n)`; `set_postfix(**values)`
    adds `key=value` pairs to the next line; `close()` logs the final count.
    At most LOG_STEPS lines with a total, so a log stays readable.
    """

    def __init__(
        self,
        iterable: Iterable[T] | None = None,
        *,
        desc: str,
        unit: str,
        total: int | None = None,
        initial: int = 0,
        log_seconds: float = LOG_SECONDS,
    ) -> None:
        self.iterable = iterable
        self.desc, self.unit, self.total = desc, unit, total
        self.n = initial
        self.log_seconds = log_seconds
        self.postfix = ""
        self._start = self._last_time = time.monotonic()
        self._last_step = self._step(initial)
        self._closed = False

    def _step(self, n: int) -> int:
        """Which tenth of the total `n` is in (0 without a total); integers, no rounding."""
        return n * LOG_STEPS // self.total if self.total else 0

    def _line(self) -> str:
        done = f"{self.n}/{self.total} {self.unit}" if self.total else f"{self.n} {self.unit}"
        percent = f" ({100 * self.n / self.total:.0f}%)" if self.total else ""
        elapsed = time.monotonic() - self._start
        postfix = f", {self.postfix}" if self.postfix else ""
        return f"{self.desc}: {done}{percent} in {elapsed:.0f}s{postfix}"

    def update(self, n: int = 1) -> None:
        """Counts `n` more units; logs a line at each new tenth (or after log_seconds)."""
        self.n += n
        now = time.monotonic()
        if self.total:
            step = self._step(self.n)
            due = step > self._last_step and self.n < self.total
        else:
            step, due = 0, now - self._last_time >= self.log_seconds
        if due:
            self._last_step, self._last_time = step, now
            LOG.info("%s", self._line())

    def set_postfix(self, **values: Any) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            LOG.info("%s", self._line())

    def __iter__(self) -> Iterator[T]:
        if self.iterable is None:
            raise TypeError("LogProgress without an iterable cannot be iterated")
        for item in self.iterable:
            yield item
            self.update(1)


class _Disabled:
    """No progress at all (`--no-progress`, or a rank other than 0)."""

    def __init__(self, iterable: Iterable[Any] | None) -> None:
        self.iterable = iterable

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, **values: Any) -> None:
        pass

    def close(self) -> None:
        pass

    def __iter__(self) -> Iterator[Any]:
        return iter(self.iterable if self.iterable is not None else ())


def progress_bar(
    iterable: Iterable[T] | None = None,
    *,
    desc: str,
    unit: str,
    total: int | None = None,
    initial: int = 0,
    enabled: bool = True,
) -> Any:
    """A progress reporter: tqdm on a terminal, `LogProgress` otherwise.

    Args:
        iterable: what to iterate (or None, then call `update(n)`).
        desc: the label of each line, e.g. "train".
        unit: what is counted, e.g. "epoch" or "row".
        total: the count at the end, if known; without it, lines are time-based.
        initial: the count already done (a resumed run).
        enabled: False gives a reporter that prints nothing.

    Returns:
        An object with `update(n)`, `set_postfix(**values)`, `close()`, iterable
        over `iterable`.
    """
    if not enabled:
        return _Disabled(iterable)
    if sys.stderr.isatty():
        from tqdm import tqdm

        return tqdm(
            iterable,
            desc=desc,
            unit=unit,
            unit_scale=unit != "epoch",
            total=total,
            initial=initial,
            mininterval=0.5,
            leave=False,
        )
    return LogProgress(iterable, desc=desc, unit=unit, total=total, initial=initial)
