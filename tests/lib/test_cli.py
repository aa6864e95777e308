"""slipway.cli: env-var fallbacks, default data dir, one-line errors and exit codes."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import pytest
from slipway import cli
from slipway.errors import DataError


def test_default_data_dir_order() -> None:
    assert cli.default_data_dir({}) == Path("slipway-data")
    assert cli.default_data_dir({"BUILD_WORKSPACE_DIRECTORY": "/ws"}) == Path("/ws/slipway-data")
    assert cli.default_data_dir(
        {"BUILD_WORKSPACE_DIRECTORY": "/ws", "SLIPWAY_DATA_DIR": "/d"}
    ) == Path("/d")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="t")
    cli.add_flag(p, "--epochs", env="T_EPOCHS", default=3, type=int, help="Epochs")
    cli.add_flag(p, "--resume", env="T_RESUME", action="store_true", help="Resume")
    return p


def test_flag_falls_back_to_env(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _parser().parse_args([]).epochs == 3
    monkeypatch.setenv("T_EPOCHS", "7")
    monkeypatch.setenv("T_RESUME", "true")
    args = _parser().parse_args([])
    assert args.epochs == 7 and args.resume is True
    assert _parser().parse_args(["--epochs", "9"]).epochs == 9  # the flag wins


def test_bad_env_value_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("T_EPOCHS", "many")
    with pytest.raises(SystemExit) as exc:
        _parser().parse_args([])
    assert exc.value.code == 2


def test_help_names_the_env_var(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _parser().parse_args(["--help"])
    assert "env T_EPOCHS" in capsys.readouterr().out


def test_parse_bool() -> None:
    assert cli.parse_bool("Yes") and not cli.parse_bool("0")
    with pytest.raises(argparse.ArgumentTypeError):
        cli.parse_bool("maybe")


def _exit_code(main, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    with pytest.raises(SystemExit) as exc:
        cli.run(main, [])
    return int(exc.value.code or 0), capsys.readouterr().err


def test_run_maps_errors_to_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    def ok(argv: Sequence[str] | None) -> int:
        return 0

    def data_error(argv: Sequence[str] | None) -> int:
        raise DataError("input file is empty: x.csv\nsecond line")

    def missing(argv: Sequence[str] | None) -> int:
        open("/nonexistent/slipway/file")  # noqa: SIM115
        return 0

    def bug(argv: Sequence[str] | None) -> int:
        raise KeyError("oops")

    assert _exit_code(ok, capsys)[0] == 0
    code, err = _exit_code(data_error, capsys)
    assert code == 1 and err == "error: input file is empty: x.csv\n"
    code, err = _exit_code(missing, capsys)
    assert code == 1 and err.startswith("error: No such file or directory") and err.count("\n") == 1
    code, err = _exit_code(bug, capsys)
    assert code == 1 and err.startswith("error: unexpected KeyError") and err.count("\n") == 1


def test_positive_int() -> None:
    assert cli.positive_int("3") == 3
    with pytest.raises(argparse.ArgumentTypeError):
        cli.positive_int("0")
