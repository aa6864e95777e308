"""slipway.progress: a bar on a terminal, a bounded number of log lines elsewhere."""

from __future__ import annotations

import io
import logging

import pytest
from slipway import progress
from slipway.progress import LogProgress, progress_bar


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "slipway.progress"]


def test_a_total_gives_a_line_per_tenth_and_a_last_one(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    bar = LogProgress(range(1000), desc="train", unit="epoch", total=1000)
    assert sum(bar) == sum(range(1000))  # iterates over what it wraps
    bar.close()
    bar.close()  # a second close logs nothing
    logged = lines(caplog)
    assert len(logged) == 10
    assert logged[0].startswith("train: 100/1000 epoch (10%) in ")
    assert logged[-1].startswith("train: 1000/1000 epoch (100%) in ")


def test_a_resumed_run_starts_at_its_count(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    bar = LogProgress(range(6, 11), desc="train", unit="epoch", total=10, initial=5)
    for _ in bar:
        bar.set_postfix(loss="0.1000")
    bar.close()
    logged = lines(caplog)
    assert logged[0].startswith("train: 6/10 epoch (60%)") and logged[0].endswith(", loss=0.1000")
    assert len(logged) == 5


def test_without_a_total_lines_are_timed(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    quiet = LogProgress(desc="predict", unit="row")  # 30 s between lines
    for _ in range(100):
        quiet.update(64)
    quiet.close()
    logged = lines(caplog)
    assert len(logged) == 1 and logged[0].startswith("predict: 6400 row in ")
    caplog.clear()
    every = LogProgress(desc="predict", unit="row", log_seconds=0.0)
    for _ in range(3):
        every.update(1)
    assert len(lines(caplog)) == 3


def test_a_terminal_gets_tqdm_and_anything_else_log_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(progress.sys, "stderr", io.StringIO())
    assert isinstance(progress_bar(desc="x", unit="row"), LogProgress)
    monkeypatch.setattr(progress.sys, "stderr", Terminal())
    bar = progress_bar(range(3), desc="x", unit="row", total=3)
    assert type(bar).__name__ == "tqdm" and list(bar) == [0, 1, 2]
    bar.close()
    off = progress_bar(range(3), desc="x", unit="row", enabled=False)
    assert list(off) == [0, 1, 2] and not isinstance(off, LogProgress)


def test_iterating_without_an_iterable_is_an_error() -> None:
    with pytest.raises(TypeError, match="without an iterable"):
        iter(LogProgress(desc="x", unit="row")).__next__()
