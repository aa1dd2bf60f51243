"""Distribution strategies by name, for the fine-tuning recipe and the CLI.

Under the TensorFlow backend the names are `tf.distribute` strategies;
under JAX, `"data_parallel"` is Keras's `keras.distribution.DataParallel`
over every local device. Whatever the name, the object returned has a
`scope()` to build and compile the model in. Keras and TensorFlow are
imported when a strategy is made (TensorFlow only for its strategies), so
the names and the `TF_CONFIG` helpers are usable under any Keras backend,
without TensorFlow, and cost the `mrrn` command's start-up nothing.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os

from mrrn_keras.errors import ConfigError

logger = logging.getLogger(__name__)

STRATEGIES = ("auto", "default", "data_parallel", "mirrored", "multi_worker", "tpu")


class LocalStrategy:
    """No distribution, outside TensorFlow: one device, a scope that does nothing."""

    num_replicas_in_sync = 1

    def scope(self):
        """A context that changes nothing (the counterpart of a strategy's scope)."""
        return contextlib.nullcontext()


def accelerators() -> list[str]:
    """The local devices Keras sees that are not CPUs (`"gpu:0"`, `"tpu:1"`, ...)."""
    import keras

    return [d for d in keras.distribution.list_devices() if not d.lower().startswith("cpu")]


def make_strategy(name: str = "auto", *, tpu: str | None = None):
    """Returns the strategy called `name`: an object with a `scope()`.

    - `"auto"`: `"data_parallel"` under JAX when there is more than one
      accelerator, `"default"` otherwise.
    - `"default"`: no distribution (one device): TensorFlow's default
      strategy under TensorFlow, a `LocalStrategy` elsewhere.
    - `"data_parallel"` (JAX): `keras.distribution.DataParallel` over every
      local device (accelerators, else the CPU devices, e.g. those
      `XLA_FLAGS=--xla_force_host_platform_device_count=N` makes): the
      model is replicated and each global batch split between the devices.
    - `"mirrored"` (TensorFlow): `MirroredStrategy` over every local GPU
      (or every logical CPU device when there is no GPU).
    - `"multi_worker"` (TensorFlow): `MultiWorkerMirroredStrategy`; the
      cluster comes from the `TF_CONFIG` environment variable, which every
      worker must set.
    - `"tpu"` (TensorFlow): `TPUStrategy` on the TPU named by `tpu` (`""` or
      None: the local / Colab one).

    Args:
        name: one of `STRATEGIES`.
        tpu: TPU address or name, for `"tpu"`.

    Returns:
        A `tf.distribute.Strategy`, a `keras.distribution.DataParallel` or
        a `LocalStrategy`.

    Raises:
        ConfigError: (a ValueError) an unknown name, `"multi_worker"` without `TF_CONFIG`,
            a tf.distribute strategy under a Keras backend other than
            TensorFlow, or `"data_parallel"` under a backend other than JAX.

    Example:

    >>> with make_strategy("default").scope():
    ...     pass
    """
    import keras

    if name not in STRATEGIES:
        raise ConfigError(f"`strategy` must be one of {STRATEGIES}. Received: strategy={name!r}")
    backend = keras.backend.backend()
    if name == "auto":
        name = "data_parallel" if backend == "jax" and len(accelerators()) > 1 else "default"
    if name == "data_parallel":
        if backend != "jax":
            raise ConfigError(
                f"strategy='data_parallel' is keras.distribution.DataParallel, which runs under "
                f"the JAX backend; the active backend is {backend!r} (under TensorFlow use "
                "strategy='mirrored')"
            )
        devices = accelerators() or keras.distribution.list_devices()
        logger.info("Data parallel over %d devices: %s", len(devices), ", ".join(devices))
        return keras.distribution.DataParallel(devices=devices)
    if name == "default" and backend != "tensorflow":
        return LocalStrategy()
    if backend != "tensorflow":
        raise ConfigError(
            f"strategy={name!r} is a tf.distribute strategy and needs the TensorFlow "
            f"backend of Keras; the active backend is {backend!r}. Use strategy='default' "
            f"or, under JAX, strategy='data_parallel'"
        )
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([d.name for d in devices])
    if name == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise ConfigError(
                "strategy='multi_worker' needs the TF_CONFIG environment variable describing "
                "the cluster and this worker's task. Received: TF_CONFIG unset"
            )
        return tf.distribute.MultiWorkerMirroredStrategy()
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or "")  # "tpu"
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


def run_scope(strategy):
    """The context `fit`, `evaluate` and `predict` run in under `strategy`.

    A `keras.distribution` distribution shards each batch between its
    devices only while it is the current one, so its scope is entered
    around the whole run; tf.distribute strategies and `LocalStrategy`
    need nothing there (Keras enters a strategy's scope itself).

    Args:
        strategy: what `make_strategy` returned.

    Returns:
        A context manager.

    Example:

    >>> with run_scope(make_strategy("default")):
    ...     pass
    """
    import keras

    if isinstance(strategy, keras.distribution.DataParallel):
        return strategy.scope()
    return contextlib.nullcontext()


def data_parallel_devices() -> int:
    """How many devices the current `keras.distribution` splits a batch between (1: none)."""
    import keras

    distribution = keras.distribution.distribution()
    if distribution is None or not hasattr(distribution, "device_mesh"):
        return 1
    return int(distribution.device_mesh.devices.size)


def is_chief() -> bool:
    """True unless `TF_CONFIG` names this process a non-chief worker.

    The chief is task 0 of "worker" when the cluster has no "chief" job.
    Only the chief writes a run's outputs; other workers write to scratch.
    """
    config = json.loads(os.environ.get("TF_CONFIG", "{}"))
    task = config.get("task", {})
    cluster = config.get("cluster", {})
    if not task:
        return True
    if task.get("type") == "chief":
        return True
    return task.get("type") == "worker" and int(task.get("index", 0)) == 0 and "chief" not in cluster


def task_name() -> str:
    """`"<type>_<index>"` of this process's task in `TF_CONFIG`, `"chief_0"` without one.

    Stable across restarts, so a restarted worker finds its own backups.
    """
    task = json.loads(os.environ.get("TF_CONFIG", "{}")).get("task", {})
    return f"{task.get('type', 'chief')}_{int(task.get('index', 0))}"
