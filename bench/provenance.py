"""What a benchmark ran on: backend, device, versions and load, for its JSON.

Imports a framework only if it is the active Keras backend or already loaded,
so a JAX run records its environment without importing TensorFlow (the GPU
machine has none).
"""

import os
import platform
import sys
import time

import keras

from mrrn_keras.layers import recurrence


def provenance() -> dict:
    """Backend, device kind, framework versions, CPU threads, load and date."""
    backend = keras.backend.backend()
    info = {
        "backend": backend,
        "device_kind": recurrence.device_kind(backend),
        "keras": keras.__version__,
        "python": platform.python_version(),
        "cpu_threads": os.cpu_count(),
        "load_average": os.getloadavg(),
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
    }
    if backend == "jax":
        import jax

        info["jax"] = jax.__version__
        info["devices"] = sorted({d.device_kind for d in jax.devices()})
        info["matmul_precision"] = jax.config.jax_default_matmul_precision
    if backend == "tensorflow" or "tensorflow" in sys.modules:
        import tensorflow as tf

        info["tensorflow"] = tf.__version__
    if "torch" in sys.modules:
        import torch

        info["torch"] = torch.__version__
        if torch.cuda.is_available():
            info["torch_device"] = torch.cuda.get_device_name()
    # The GPU machine has no TensorFlow: a JAX run must not need it.
    info["tensorflow_imported"] = "tensorflow" in sys.modules
    return info
