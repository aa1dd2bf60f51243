"""mrrn-keras: Multi-Level Recurrent Residual Networks for action recognition.

Keras 3 with the TensorFlow backend is the only supported configuration.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# TensorFlow's C++ start-up chatter (CUDA probing on CPU-only machines) is
# noise for library users; an explicit setting still wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

if keras.backend.backend() != "tensorflow":
    raise ImportError(
        "mrrn_keras needs the TensorFlow backend of Keras 3, but the active "
        f"backend is {keras.backend.backend()!r}. Select TensorFlow with "
        "`export KERAS_BACKEND=tensorflow` (or set \"backend\": \"tensorflow\" "
        "in ~/.keras/keras.json) before importing keras."
    )

from mrrn_keras.export import export_for_serving  # noqa: E402
from mrrn_keras.layers.sru import SRU  # noqa: E402
from mrrn_keras.model import MRRN  # noqa: E402
from mrrn_keras.zoo import list_variants, load_mrrn, variant_info  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "MRRN",
    "SRU",
    "__version__",
    "export_for_serving",
    "list_variants",
    "load_mrrn",
    "variant_info",
]
