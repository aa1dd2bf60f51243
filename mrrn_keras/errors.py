"""Exception types raised by mrrn_keras.

Each error says what was expected, what was seen and, where it helps, what
to do about it. They subclass the builtin that fits (`ValueError` for bad
values, `OSError` for files) so callers can catch either.
"""


class MRRNError(Exception):
    """Base class of every error raised on purpose by mrrn_keras."""


class VideoError(MRRNError, ValueError):
    """A video file is missing, empty, unreadable or has no video stream."""

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class DatasetError(MRRNError, ValueError):
    """A dataset index (split file, CSV, folder layout) is malformed."""


class ZooError(MRRNError, ValueError):
    """A zoo entry is unknown or malformed."""


class WeightsError(MRRNError, OSError):
    """Weights could not be fetched, verified or read."""


class ExportError(MRRNError, OSError):
    """A SavedModel could not be written where asked (an unwritable or invalid base folder)."""
