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


class SourceError(VideoError):
    """A live source (camera, stream URL, FIFO, paced file) did not open, stalled or died."""


class DatasetError(MRRNError, ValueError):
    """A dataset index (split file, CSV, folder layout) is malformed."""


class ZooError(MRRNError, ValueError):
    """A zoo entry is unknown or malformed."""


class WeightsError(MRRNError, OSError):
    """Weights could not be fetched, verified or read."""


class ExistingPathError(MRRNError, FileExistsError):
    """A file or folder is in the way: not written by the package, or `overwrite` was not given.

    The package deletes or replaces only what its marker proves it wrote
    (`mrrn_keras.files.OWNED_MARKER`); anything else is left as it is.
    """


class ExportError(MRRNError, OSError):
    """A SavedModel could not be written where asked (an unwritable or invalid base folder)."""


class BackendError(MRRNError, RuntimeError):
    """A feature needs a Keras backend other than the active one."""


def require_tensorflow_backend(feature: str) -> None:
    """Raises `BackendError` unless Keras runs on TensorFlow.

    Args:
        feature: what needs TensorFlow, e.g. "SavedModel export".
    """
    import keras

    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise BackendError(
            f"{feature} needs the TensorFlow backend of Keras; the active backend is "
            f"{backend!r}. Run it with KERAS_BACKEND=tensorflow: a model saved under "
            f"{backend} (.keras or a zoo entry) loads there with the same weights."
        )


class ConfigError(MRRNError, ValueError):
    """A run's settings are invalid or do not fit the model or the data."""


class RunFolderError(MRRNError, OSError):
    """A run folder cannot be used: a file, not writable, or a finished run."""
