"""A tiny fine-tuning job run in a subprocess by the distribution and resume tests.

    python -m tests.finetune_job '<FinetuneConfig fields as JSON>' [logical_cpus]

It builds a tiny MRRN instead of loading a zoo variant, so it needs no entry,
and imports TensorFlow only for logical CPUs (it runs under JAX without it).
"""

import json
import logging
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main(argv):
    # The run's epoch lines are log records: the resume test reads them here.
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s")
    fields = json.loads(argv[1])
    if len(argv) > 2:  # logical CPUs for tf.distribute (TensorFlow backend only)
        import tensorflow as tf

        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * int(argv[2])
        )
    from mrrn_keras import MRRN
    from mrrn_keras.finetune import FinetuneConfig, finetune

    size = fields.get("size", 32)

    def build(num_classes, class_names):
        return MRRN(
            num_classes, backbone="resnet18", backbone_width=0.125, sru_units=8, sru_layers=1,
            stream_outputs=True, class_names=class_names, image_size=(size, size),
        )

    metrics = finetune(FinetuneConfig(**fields), build_model=build, command="tests.finetune_job")
    print("METRICS " + json.dumps({k: metrics[k] for k in ("top1", "videos", "train_seconds")}))


if __name__ == "__main__":
    main(sys.argv)
