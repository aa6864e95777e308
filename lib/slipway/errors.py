"""Errors Slipway raises for conditions a user can fix.

Jobs map every `SlipwayError` to a one-line `error: ...` on stderr and exit code 1;
anything else is a bug and is reported as such.
"""


class SlipwayError(Exception):
    """Base class: a failure with a message fit to show the user as is."""


class DataError(SlipwayError):
    """Input data is missing, empty or unreadable."""


class SchemaError(DataError):
    """Input data does not match the expected columns or dtypes."""


class CheckpointError(SlipwayError):
    """A training checkpoint is missing, corrupt or from a different configuration."""


class DistributedError(SlipwayError):
    """A collective of distributed training failed or timed out (names rank and collective)."""


class ModelFormatError(SlipwayError):
    """A model directory is missing files or was written by an unknown format version."""


class RegistryError(SlipwayError):
    """The model registry refused a request or does not hold what was asked for."""


class RegistryUnavailableError(RegistryError):
    """The tracking server cannot be reached."""


class ModelNotFoundError(RegistryError):
    """A registered model, version or alias does not exist."""


class AliasConflictError(RegistryError):
    """An alias moved between being read and being moved (a concurrent writer won)."""


class PipelineError(SlipwayError):
    """A pipeline step failed or the pipeline definition is invalid."""
