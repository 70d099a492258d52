"""The errors that convnet's file readers raise."""

from __future__ import annotations

__all__ = ["ModelFormatError", "CheckpointError"]


class ModelFormatError(ValueError):
    """A model file is malformed: truncated, a bad header, an unknown layer type, a tensor
    whose shape or dtype does not match the architecture, bad JSON, ...

    The message names the file and the problem.  Readers raise this and nothing else for
    anything wrong *inside* a file (a missing file is still ``FileNotFoundError``).
    """


class CheckpointError(ModelFormatError):
    """A training checkpoint is malformed or does not fit the run it is resumed into."""
