"""slipway.errors: the hierarchy, and how `cli.run` turns each error into one line and an exit code."""

from __future__ import annotations

import pytest
from slipway import cli, errors


def test_all_errors_are_slipway_errors() -> None:
    for cls in (
        errors.DataError,
        errors.SchemaError,
        errors.CheckpointError,
        errors.ModelFormatError,
        errors.RegistryError,
        errors.RegistryUnavailableError,
        errors.ModelNotFoundError,
        errors.AliasConflictError,
        errors.DistributedError,
        errors.PipelineError,
    ):
        assert issubclass(cls, errors.SlipwayError)


def test_specific_errors_refine_general_ones() -> None:
    assert issubclass(errors.SchemaError, errors.DataError)
    assert issubclass(errors.RegistryUnavailableError, errors.RegistryError)
    assert issubclass(errors.ModelNotFoundError, errors.RegistryError)
    assert issubclass(errors.AliasConflictError, errors.RegistryError)


def _exit_of(error: BaseException, capsys) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    def main(argv):  # type: ignore[no-untyped-def]
        raise error

    with pytest.raises(SystemExit) as exited:
        cli.run(main, [])
    return int(exited.value.code or 0), capsys.readouterr().err


def test_each_error_becomes_one_line_and_exit_1(capsys) -> None:  # type: ignore[no-untyped-def]
    for cls in (
        errors.DataError,
        errors.SchemaError,
        errors.CheckpointError,
        errors.ModelFormatError,
        errors.RegistryUnavailableError,
        errors.ModelNotFoundError,
        errors.AliasConflictError,
        errors.DistributedError,
        errors.PipelineError,
    ):
        code, err = _exit_of(cls(f"{cls.__name__} happened\nsecond line"), capsys)
        assert (code, err) == (1, f"error: {cls.__name__} happened\n"), cls


def test_a_bug_is_one_line_naming_its_type(capsys) -> None:  # type: ignore[no-untyped-def]
    code, err = _exit_of(ZeroDivisionError("division by zero"), capsys)
    assert code == 1
    assert err.startswith("error: unexpected ZeroDivisionError: division by zero (rerun with")
    assert _exit_of(KeyboardInterrupt(), capsys) == (130, "error: interrupted\n")
