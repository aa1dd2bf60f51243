"""mrrn-keras: Multi-Level Recurrent Residual Networks for action recognition.

Runs on Keras 3's TensorFlow backend (the default, and what SavedModel
export needs), its JAX backend, and, for what its autodiff allows, PyTorch.
Select a backend with `KERAS_BACKEND` before the first `import keras`.
TensorFlow is imported only by what needs it: tf.data pipelines, the frame
cache, SavedModel export and tf.distribute. The public names below are
imported on first use, so `import mrrn_keras` (and `mrrn list`, `mrrn info`)
load neither Keras nor TensorFlow.
"""

import importlib
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# TensorFlow's C++ start-up chatter (CUDA probing on CPU-only machines) is
# noise for library users; an explicit setting still wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"

# public name -> the module defining it (imported on first access, PEP 562).
_EXPORTS = {
    "MRRN": "mrrn_keras.model",
    "MRRNBackbone": "mrrn_keras.model",
    "MRRNVideoClassifier": "mrrn_keras.model",
    "SRU": "mrrn_keras.layers.sru",
    "classify": "mrrn_keras.predict",
    "export_for_serving": "mrrn_keras.export",
    "list_variants": "mrrn_keras.zoo",
    "load_clip": "mrrn_keras.data.video",
    "load_mrrn": "mrrn_keras.zoo",
    "save_entry": "mrrn_keras.zoo",
    "timeline": "mrrn_keras.timelines",
    "variant_info": "mrrn_keras.zoo",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'mrrn_keras' has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *_EXPORTS})


# `keras.saving.load_model` finds MRRN's layers only once their module has
# run. Where Keras is loaded already that costs little, so it runs now:
# `import keras; import mrrn_keras; keras.saving.load_model(...)` works. In
# a process that has not imported Keras (the `mrrn` command), accessing any
# public name above, or `mrrn_keras.zoo.load_model_file`, registers them.
if "keras" in sys.modules:
    importlib.import_module("mrrn_keras.model")
