"""SavedModel export for TF Serving.

`export_for_serving` writes `<base_dir>/<version>/`, a SavedModel that a
process without mrrn_keras (TF Serving, or plain `tf.saved_model.load`) can
run. It has two signatures with the same outputs:

    serving_default  frames       uint8  (batch, time, height, width, 3)
    serving_jpeg     jpeg_frames  string (batch, time), one encoded JPEG per frame
    outputs          probabilities float32 (batch, K), top_k_labels string
                     (batch, k), top_k_scores float32 (batch, k)

The JPEG signature (what a REST client can send) decodes every frame to RGB
and resizes it to the model's input size inside the graph. Labels are baked
into the graph as a constant.

A version is written into a hidden temporary sibling (`.tmp-<version>-*`)
and renamed into place, so a server watching `base_dir` never sees half a
version; on any failure the temporary directory is removed.
"""

import logging
import os
import pathlib
import shutil
import tempfile
from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from mrrn_keras.errors import require_tensorflow_backend
from mrrn_keras.labels import resolve_labels
from mrrn_keras.model import FUSED_OUTPUT

logger = logging.getLogger(__name__)

DEFAULT_SIGNATURE = "serving_default"
JPEG_SIGNATURE = "serving_jpeg"
FRAMES_INPUT = "frames"
JPEG_INPUT = "jpeg_frames"
WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
DEFAULT_WARMUP_FRAMES = 8
MIN_IMAGE_SIZE = 32


class _ServingModule(tf.Module):
    """Holds the model, the label constant and the two serving functions."""

    def __init__(self, model, labels, top_k, frame_shape, resize_to):
        super().__init__(name="mrrn_serving")
        self.model = model  # tracks the weights the functions capture
        self._labels = tf.constant(list(labels), tf.string, name="labels")
        self._top_k = top_k
        height, width = frame_shape
        self._frames_spec = tf.TensorSpec(
            [None, None, height, width, 3], tf.uint8, name=FRAMES_INPUT
        )
        self._resize_to = resize_to
        self.serve_frames = tf.function(self._serve_frames, input_signature=[self._frames_spec])
        self.serve_jpeg = tf.function(
            self._serve_jpeg,
            input_signature=[tf.TensorSpec([None, None], tf.string, name=JPEG_INPUT)],
        )

    def _predict(self, frames):
        probabilities = self.model(frames, training=False)
        if isinstance(probabilities, dict):
            probabilities = probabilities[FUSED_OUTPUT]
        probabilities = tf.cast(probabilities, tf.float32)
        scores, indices = tf.math.top_k(probabilities, k=self._top_k)
        return {
            "probabilities": probabilities,
            "top_k_labels": tf.gather(self._labels, indices),
            "top_k_scores": scores,
        }

    def _serve_frames(self, frames):
        # A loaded signature (and TF Serving) feeds tensors without checking
        # their shape against the signature, and static-shape assertions are
        # folded away; EnsureShape checks at run time and names `frames`.
        frames = tf.ensure_shape(frames, self._frames_spec.shape, name="check_frames_shape")
        shape = tf.shape(frames)
        checks = [
            tf.debugging.assert_positive(
                shape[1], message="`frames` must have at least one time step"
            ),
            tf.debugging.assert_greater_equal(
                tf.reduce_min(shape[2:4]),
                MIN_IMAGE_SIZE,
                message=f"`frames` must be at least {MIN_IMAGE_SIZE}x{MIN_IMAGE_SIZE} pixels",
            ),
        ]
        with tf.control_dependencies(checks):
            frames = tf.identity(frames)
        return self._predict(frames)

    def _serve_jpeg(self, jpeg_frames):
        jpeg_frames = tf.ensure_shape(jpeg_frames, [None, None], name="check_jpeg_frames_shape")
        shape = tf.shape(jpeg_frames)
        check = tf.debugging.assert_positive(
            shape[1], message="`jpeg_frames` must have at least one time step"
        )
        with tf.control_dependencies([check]):
            flat = tf.reshape(jpeg_frames, [-1])  # (B, T) -> (B*T,)
        height, width = self._resize_to

        def decode(data):
            image = tf.io.decode_jpeg(data, channels=3)
            return tf.image.resize(image, (height, width))  # float32 in [0, 255]

        images = tf.map_fn(
            decode, flat, fn_output_signature=tf.TensorSpec([height, width, 3], tf.float32)
        )
        # (B*T, H, W, 3) -> (B, T, H, W, 3)
        frames = tf.reshape(images, tf.concat([shape, [height, width, 3]], axis=0))
        return self._predict(frames)


def export_for_serving(
    model_or_variant,
    base_dir,
    *,
    version: int | None = None,
    overwrite: bool = False,
    top_k: int = 5,
    jit_compile: bool = False,
    warmup: bool = True,
    frames: int | None = None,
    image_size: tuple[int, int] | None = None,
    labels: Sequence[str] | None = None,
) -> pathlib.Path:
    """Exports an MRRN as a SavedModel for TF Serving.

    Writes `base_dir/<version>/` atomically: the SavedModel is built in a
    hidden temporary sibling directory and renamed into place, so a server
    watching `base_dir` never loads half a version, and a failure leaves
    nothing behind.

    Args:
        model_or_variant: an `MRRN` (or any Keras model mapping frames
            `(batch, time, height, width, 3)` to probabilities `(batch, K)`),
            or a zoo variant name / entry folder given to
            `mrrn_keras.zoo.load_mrrn`.
        base_dir: str or path. The model base path TF Serving watches;
            created if missing.
        version: int >= 0, or `None` for one more than the largest numeric
            subdirectory of `base_dir` (1 when there is none). Defaults to
            `None`.
        overwrite: bool. Replace an existing version. Defaults to `False`.
        top_k: int. Labels and scores returned per clip (at most K).
            Defaults to `5`.
        jit_compile: bool. Keep the SRU loops XLA-compiled in the graph. TF
            Serving then needs `--xla_cpu_compilation_enabled`. Defaults to
            `False`: plain graph loops with the same numerics.
        warmup: bool. Write `assets.extra/tf_serving_warmup_requests`, a
            few requests per signature that TF Serving replays at load.
            Defaults to `True`.
        frames: int. Clip length of the warmup requests. Defaults to the
            variant's frame count, else 8.
        image_size: `(height, width)` the JPEG signature resizes frames to.
            Defaults to the model's `image_size` (or the variant's input
            size); required when the model accepts any size.
        labels: sequence of K class names baked into the graph. Defaults to
            the model's `class_names`, the variant's labels, else
            `"class_<i>"`.

    Returns:
        The path of the written version directory.

    Raises:
        FileExistsError: if the version exists and `overwrite` is false.
        ValueError: for an invalid argument.
        mrrn_keras.errors.BackendError: under a Keras backend other than
            TensorFlow (load the model there: its weights are the same).

    Example:

    >>> import tempfile
    >>> from mrrn_keras import MRRN
    >>> model = MRRN(3, backbone="resnet18", backbone_width=0.125,
    ...              sru_units=8, sru_layers=1, image_size=(32, 32))
    >>> path = export_for_serving(model, tempfile.mkdtemp(), warmup=False)
    >>> path.name
    '1'
    """
    require_tensorflow_backend("SavedModel export")
    if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k <= 0:
        raise ValueError(f"`top_k` must be a positive integer. Received: top_k={top_k!r}")
    if version is not None and (
        not isinstance(version, int) or isinstance(version, bool) or version < 0
    ):
        raise ValueError(
            f"`version` must be a non-negative integer or None. Received: version={version!r}"
        )
    if frames is not None and (
        not isinstance(frames, int) or isinstance(frames, bool) or frames <= 0
    ):
        raise ValueError(f"`frames` must be a positive integer. Received: frames={frames!r}")

    model, info = _resolve_model(model_or_variant)
    output = model.output[FUSED_OUTPUT] if isinstance(model.output, dict) else model.output
    num_classes = int(output.shape[-1])
    labels = resolve_labels(labels, model, info, num_classes)
    model_size = getattr(model, "image_size", None)
    resize_to = _resolve_image_size(image_size, model_size, info)
    if frames is None:
        frames = int(info.input["frames"]) if info is not None else DEFAULT_WARMUP_FRAMES

    base_dir = pathlib.Path(base_dir)
    base_dir.mkdir(parents=True, exist_ok=True)
    if version is None:
        version = _next_version(base_dir)
    target = base_dir / str(version)
    if target.exists() and not overwrite:
        raise FileExistsError(
            f"{target} already exists: pass overwrite=True (`--overwrite`) to replace "
            "it, or another version."
        )

    tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".tmp-{version}-", dir=base_dir))
    try:
        _write_saved_model(
            model,
            tmp,
            labels=labels,
            top_k=min(top_k, num_classes),
            jit_compile=jit_compile,
            frame_shape=tuple(model_size) if model_size else (None, None),
            resize_to=resize_to,
        )
        if warmup:
            _write_warmup(tmp, frames=frames, image_size=resize_to)
        _move_into_place(tmp, target, overwrite=overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("Exported %s to %s", model.name, target)
    return target


def _resolve_model(model_or_variant):
    if isinstance(model_or_variant, keras.Model):
        return model_or_variant, None
    if isinstance(model_or_variant, (str, os.PathLike)):
        # Imported here: the zoo is only needed for names and entry folders.
        from mrrn_keras import zoo

        return zoo.load_mrrn(model_or_variant), zoo.variant_info(model_or_variant)
    raise ValueError(
        "`model_or_variant` must be a keras.Model, a variant name or an entry folder. "
        f"Received: model_or_variant={model_or_variant!r}"
    )


def _resolve_image_size(image_size, model_size, info):
    if image_size is not None:
        image_size = tuple(int(s) for s in image_size)
        if len(image_size) != 2 or min(image_size) < MIN_IMAGE_SIZE:
            raise ValueError(
                f"`image_size` must be (height, width), each at least {MIN_IMAGE_SIZE}. "
                f"Received: image_size={image_size!r}"
            )
        if model_size is not None and tuple(model_size) != image_size:
            raise ValueError(
                f"`image_size` must match the model's input size {tuple(model_size)}. "
                f"Received: image_size={image_size!r}"
            )
        return image_size
    if model_size is not None:
        return tuple(int(s) for s in model_size)
    if info is not None:
        return int(info.input["height"]), int(info.input["width"])
    raise ValueError(
        "The model accepts any frame size, so the JPEG signature needs a size to "
        "resize frames to: pass image_size=(height, width). Received: image_size=None"
    )


def _next_version(base_dir):
    versions = [
        int(p.name)
        for p in base_dir.iterdir()
        if p.is_dir() and p.name.isascii() and p.name.isdigit()
    ]
    return max(versions, default=0) + 1


def _write_saved_model(model, path, *, labels, top_k, jit_compile, frame_shape, resize_to):
    implementation = getattr(model, "implementation", None)
    switch = hasattr(model, "set_implementation")
    if switch:
        model.set_implementation("xla" if jit_compile else "graph")
    try:
        module = _ServingModule(model, labels, top_k, frame_shape, resize_to)
        signatures = {
            DEFAULT_SIGNATURE: module.serve_frames.get_concrete_function(),
            JPEG_SIGNATURE: module.serve_jpeg.get_concrete_function(),
        }
        # The SRU's custom gradient is saved too (the default): without it,
        # every load warns about ops with unsaved custom gradients.
        tf.saved_model.save(module, str(path), signatures=signatures)
    finally:
        if switch:
            model.set_implementation(implementation)


def _write_warmup(path, *, frames, image_size):
    # Imported here: tensorflow-serving-api is only needed for warmup files.
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    height, width = image_size
    clips = [np.zeros((1, frames, height, width, 3), np.uint8)]
    clips.append(np.full_like(clips[0], 128))
    requests = []
    for clip in clips:
        request = predict_pb2.PredictRequest(
            model_spec=model_pb2.ModelSpec(signature_name=DEFAULT_SIGNATURE)
        )
        request.inputs[FRAMES_INPUT].CopyFrom(tf.make_tensor_proto(clip))
        requests.append(request)
        jpeg = tf.io.encode_jpeg(clip[0, 0]).numpy()
        request = predict_pb2.PredictRequest(
            model_spec=model_pb2.ModelSpec(signature_name=JPEG_SIGNATURE)
        )
        request.inputs[JPEG_INPUT].CopyFrom(
            tf.make_tensor_proto(np.array([[jpeg] * frames], dtype=object), dtype=tf.string)
        )
        requests.append(request)
    warmup_path = pathlib.Path(path) / WARMUP_FILE
    warmup_path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(warmup_path)) as writer:
        for request in requests:
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request)
            )
            writer.write(log.SerializeToString())


def _move_into_place(tmp, target, *, overwrite):
    if not target.exists():
        # A directory created meanwhile is replaced only if empty: rename
        # refuses to replace a non-empty one.
        os.rename(tmp, target)
        return
    if not overwrite:
        raise FileExistsError(f"{target} already exists")
    # No atomic swap of two directories: move the old version aside, move
    # the new one in, then delete the old one (restored if the move fails).
    old = pathlib.Path(tempfile.mkdtemp(prefix=f".old-{target.name}-", dir=target.parent))
    os.rename(target, old / "version")
    try:
        os.rename(tmp, target)
    except BaseException:
        os.rename(old / "version", target)
        shutil.rmtree(old, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)
