"""slipway.errors: the hierarchy the jobs rely on to map failures to exit code 1."""

from __future__ import annotations

from slipway import errors


def test_all_errors_are_slipway_errors() -> None:
    for cls in (
        errors.DataError,
        errors.SchemaError,
        errors.CheckpointError,
        errors.ModelFormatError,
        errors.RegistryError,
        errors.RegistryUnavailableError,
        errors.ModelNotFoundError,
        errors.PipelineError,
    ):
        assert issubclass(cls, errors.SlipwayError)


def test_specific_errors_refine_general_ones() -> None:
    assert issubclass(errors.SchemaError, errors.DataError)
    assert issubclass(errors.RegistryUnavailableError, errors.RegistryError)
    assert issubclass(errors.ModelNotFoundError, errors.RegistryError)
