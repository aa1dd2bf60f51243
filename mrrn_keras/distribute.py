"""tf.distribute strategies by name, for the fine-tuning recipe and the CLI.

Keras and TensorFlow are imported when a strategy is made, so the names and
the `TF_CONFIG` helpers are usable under any Keras backend and cost the
`mrrn` command's start-up nothing.
"""

from __future__ import annotations

import json
import logging
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import tensorflow as tf

logger = logging.getLogger(__name__)

STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")


def make_strategy(name: str = "default", *, tpu: str | None = None) -> tf.distribute.Strategy:
    """Returns the `tf.distribute.Strategy` called `name`.

    - `"default"`: no distribution (one device).
    - `"mirrored"`: `MirroredStrategy` over every local GPU (or every
      logical CPU device when there is no GPU).
    - `"multi_worker"`: `MultiWorkerMirroredStrategy`; the cluster comes from
      the `TF_CONFIG` environment variable, which every worker must set.
    - `"tpu"`: `TPUStrategy` on the TPU named by `tpu` (`""` or None: the
      local / Colab one).

    Args:
        name: one of `STRATEGIES`.
        tpu: TPU address or name, for `"tpu"`.

    Raises:
        ValueError: an unknown name, `"multi_worker"` without `TF_CONFIG`, or
            a distributed strategy under a Keras backend other than
            TensorFlow (tf.distribute places TensorFlow variables only).
    """
    import keras
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise ValueError(
            f"strategy={name!r} is a tf.distribute strategy and needs the TensorFlow "
            f"backend of Keras; the active backend is {backend!r}. Use strategy='default' "
            f"(or keras.distribution under JAX). Received: strategy={name!r}"
        )
    if name == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([d.name for d in devices])
    if name == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError(
                "strategy='multi_worker' needs the TF_CONFIG environment variable describing "
                "the cluster and this worker's task. Received: TF_CONFIG unset"
            )
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or "")
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    raise ValueError(f"`strategy` must be one of {STRATEGIES}. Received: strategy={name!r}")


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
