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

A version is claimed by creating a hidden folder `.tmp-<version>` (an atomic
`mkdir`, so concurrent exports to one base get distinct versions), holding
the package's marker `.mrrn-owned` (`mrrn_keras.files.mark_owned`: host and
pid of the exporting process) and the SavedModel being
written in `version/`, which is renamed into place when complete: a server
watching `base_dir` never sees half a version. `--overwrite` swaps the new
folder with the served one in one step (Linux `renameat2(RENAME_EXCHANGE)`),
so a complete version is in place at every instant; where that call is
missing, the old version is moved into the claim for the instant between
two renames, and put back by the next export if the process dies there.
Version folders are created like any other (mode 0777 less the umask), so a
TF Serving process of another user can read them. Claims whose marker
names a process that is gone (or, from another host, that have not changed
for a day: `mrrn_keras.files.is_stale_temp`) are removed by the next export
to the same base; a `.tmp-*` folder without the marker is never touched.
"""

import logging
import os
import pathlib
import re
import shutil
from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from mrrn_keras.errors import ExportError, require_tensorflow_backend
from mrrn_keras.files import STASH_NAME, is_stale_temp, mark_owned, replace_folder
from mrrn_keras.labels import resolve_labels
from mrrn_keras.model import FUSED_OUTPUT
from mrrn_keras.progress import progress_bar
from mrrn_keras.validation import MIN_IMAGE_SIZE, check_image_size, check_int

logger = logging.getLogger(__name__)

DEFAULT_SIGNATURE = "serving_default"
JPEG_SIGNATURE = "serving_jpeg"
FRAMES_INPUT = "frames"
JPEG_INPUT = "jpeg_frames"
WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
DEFAULT_WARMUP_FRAMES = 8
# TF Serving reads version folder names as int64.
MAX_VERSION = 2**63 - 1
CLAIM_PREFIX = ".tmp-"
# The kind named by a claim's marker.
CLAIM_KIND = "savedmodel export claim"
_CLAIM = re.compile(r"\.tmp-([0-9]+)")


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
        version: int in `[0, 2**63 - 1]` (what TF Serving reads), or `None`
            for one more than the largest version in `base_dir` or being
            exported to it (1 when there is none). Defaults to `None`.
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
        FileExistsError: the version exists and `overwrite` is false, or
            another export of it is running.
        ExportError: `base_dir` cannot be created or written.
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
    check_int("top_k", top_k)
    if version is not None and (
        not isinstance(version, int) or isinstance(version, bool)
        or not 0 <= version <= MAX_VERSION
    ):
        raise ValueError(
            f"`version` must be an integer from 0 to 2**63 - 1 (TF Serving's int64) or None. "
            f"Received: version={version!r}"
        )
    if frames is not None:
        check_int("frames", frames)

    model, info = _resolve_model(model_or_variant)
    output = model.output[FUSED_OUTPUT] if isinstance(model.output, dict) else model.output
    num_classes = int(output.shape[-1])
    labels = resolve_labels(labels, model, info, num_classes)
    model_size = getattr(model, "image_size", None)
    resize_to = _resolve_image_size(image_size, model_size, info)
    if frames is None:
        frames = int(info.input["frames"]) if info is not None else DEFAULT_WARMUP_FRAMES

    base_dir = pathlib.Path(base_dir)
    _prepare_base(base_dir)
    version, claim = _claim_version(base_dir, version, overwrite=overwrite)
    target = base_dir / str(version)
    tmp = claim / "version"
    # Tracing and saving take most of an export: a bar on a terminal shows it is alive.
    bar = progress_bar(total=2 + warmup, desc="export", unit="step")
    try:
        tmp.mkdir()
        bar.set_postfix_str("SavedModel")
        _write_saved_model(
            model,
            tmp,
            labels=labels,
            top_k=min(top_k, num_classes),
            jit_compile=jit_compile,
            frame_shape=tuple(model_size) if model_size else (None, None),
            resize_to=resize_to,
        )
        bar.update()
        if warmup:
            bar.set_postfix_str("warmup requests")
            _write_warmup(tmp, frames=frames, image_size=resize_to)
            bar.update()
        replace_folder(tmp, target, overwrite=overwrite)
        bar.update()
    finally:
        bar.close()
        # After an exchange this holds the replaced version.
        shutil.rmtree(claim, ignore_errors=True)
    logger.info("Exported %s to %s", model.name, target)
    return target


def _resolve_model(model_or_variant):
    if isinstance(model_or_variant, keras.Model):
        return model_or_variant, None
    if isinstance(model_or_variant, (str, os.PathLike)):
        # Imported here: the zoo is only needed for names and entry folders.
        from mrrn_keras import zoo

        info = zoo.variant_info(model_or_variant)
        zoo.check_trained(info)
        return zoo.load_mrrn(model_or_variant), info
    raise ValueError(
        "`model_or_variant` must be a keras.Model, a variant name or an entry folder. "
        f"Received: model_or_variant={model_or_variant!r}"
    )


def _resolve_image_size(image_size, model_size, info):
    if image_size is not None:
        image_size = check_image_size("image_size", image_size)
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


def _prepare_base(base_dir: pathlib.Path) -> None:
    """Creates `base_dir` and removes the claims of killed exports."""
    try:
        base_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ExportError(
            f"Cannot create the export folder {base_dir}: {err.strerror or err}. Pass a "
            "writable folder as the base."
        ) from err
    for path in base_dir.glob(f"{CLAIM_PREFIX}*"):
        if is_stale_temp(path, CLAIM_KIND):
            _remove_stale_claim(base_dir, path)


def _remove_stale_claim(base_dir: pathlib.Path, claim: pathlib.Path) -> None:
    match = _CLAIM.fullmatch(claim.name)
    old = claim / STASH_NAME
    if match and old.is_dir() and not (base_dir / match[1]).exists():
        # Killed between the two renames of an overwrite: serve the old version again.
        try:
            os.rename(old, base_dir / match[1])
        except OSError as err:
            logger.warning("Could not restore %s from %s: %s", base_dir / match[1], old, err)
            return
        logger.warning("Restored %s, left aside by a killed export", base_dir / match[1])
    shutil.rmtree(claim, ignore_errors=True)
    logger.info("Removed %s, left by a killed export", claim)


def _claim_version(base_dir: pathlib.Path, version, *, overwrite: bool):
    """(version, claim folder): `version`, or the next free one, claimed by an atomic mkdir."""
    while True:
        number = _next_version(base_dir) if version is None else version
        claim = base_dir / f"{CLAIM_PREFIX}{number}"
        try:
            claim.mkdir()
            mark_owned(claim, CLAIM_KIND)
        except FileExistsError:
            if version is None:
                continue  # another export took it first
            raise FileExistsError(
                f"Another export of version {version} to {base_dir} is running ({claim} "
                "exists): wait for it, or pick another version."
            ) from None
        except OSError as err:
            shutil.rmtree(claim, ignore_errors=True)
            raise ExportError(
                f"Cannot write in the export folder {base_dir}: {err.strerror or err}. Pass "
                "a writable folder as the base."
            ) from err
        target = base_dir / str(number)
        if not target.exists() or (version is not None and overwrite):
            return number, claim
        shutil.rmtree(claim, ignore_errors=True)
        if version is not None:
            raise FileExistsError(
                f"{target} already exists: pass overwrite=True (`--overwrite`) to replace "
                "it, or another version."
            )
        # Finished by another export between the listing and the claim: take the next.



def _next_version(base_dir: pathlib.Path) -> int:
    """One more than the largest version folder or claim in `base_dir` (1 when none)."""
    versions = [0]
    for path in base_dir.iterdir():
        match = _CLAIM.fullmatch(path.name)
        name = match[1] if match else path.name
        # Files count too: a version or claim name taken by anything is not free.
        if name.isascii() and name.isdigit() and int(name) <= MAX_VERSION:
            versions.append(int(name))
    version = max(versions) + 1
    if version > MAX_VERSION:
        raise ValueError(
            f"{base_dir} already holds version {MAX_VERSION}, the largest TF Serving reads: "
            "pass `version` explicitly. Received: version=None"
        )
    return version


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
