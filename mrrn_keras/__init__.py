"""mrrn-keras: Multi-Level Recurrent Residual Networks for action recognition.

Runs on Keras 3's TensorFlow backend (the default, and what SavedModel
export needs), its JAX backend, and, for what its autodiff allows, PyTorch.
Select a backend with `KERAS_BACKEND` before the first `import keras`.
TensorFlow is imported only by what needs it: tf.data pipelines, the frame
cache, SavedModel export and tf.distribute.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# TensorFlow's C++ start-up chatter (CUDA probing on CPU-only machines) is
# noise for library users; an explicit setting still wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from mrrn_keras.layers.sru import SRU  # noqa: E402
from mrrn_keras.model import MRRN, MRRNBackbone, MRRNVideoClassifier  # noqa: E402
from mrrn_keras.zoo import list_variants, load_mrrn, save_entry, variant_info  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "MRRN",
    "MRRNBackbone",
    "MRRNVideoClassifier",
    "SRU",
    "__version__",
    "export_for_serving",
    "list_variants",
    "load_mrrn",
    "save_entry",
    "variant_info",
]


def __getattr__(name):
    # SavedModel export needs TensorFlow: imported on first use only, so
    # `import mrrn_keras` under JAX never loads it.
    if name == "export_for_serving":
        from mrrn_keras.export import export_for_serving

        return export_for_serving
    raise AttributeError(f"module 'mrrn_keras' has no attribute {name!r}")
