"""`export_model`: every deployment format behind one call (`mrrn export --format`)."""

import json
import logging
import os
import pathlib
import shutil
from collections.abc import Iterable, Sequence

import numpy as np

from mrrn_keras.errors import ExportError, require_tensorflow_backend
from mrrn_keras.files import check_replaceable, mark_owned, replace_folder, scratch_folder

logger = logging.getLogger(__name__)

FORMATS = ("savedmodel", "litert", "onnx")
LABELS_FILE = "labels.txt"
MANIFEST_FILE = "deploy.json"
MOTION_DATASET = "synthetic-motion-9"
# Calibration clips come from the motion generator with another seed than
# the dataset's (seed 0), so no test clip is used to quantize.
CALIBRATION_SEED = 1
# The kind named by the marker of an export folder, and where it is built.
EXPORT_KIND = "export"
TEMP_PREFIX = ".tmp-"


def export_model(
    model_or_variant,
    out,
    *,
    format: str = "savedmodel",
    stream: bool = False,
    quantization: str | None = None,
    representative: Iterable[np.ndarray] | None = None,
    frames: int | None = None,
    chunk_frames: int = 1,
    labels: Sequence[str] | None = None,
    overwrite: bool = False,
    **serving_kwargs,
) -> pathlib.Path:
    """Exports an MRRN as a SavedModel, a LiteRT file or an ONNX file.

    `format="savedmodel"` without `stream` is `mrrn_keras.export.
    export_for_serving` (a versioned TF Serving base; `serving_kwargs` go
    there). Every other export writes the folder `out` (atomically: built
    beside it in a marked temporary folder `.tmp-<name>-*`, then swapped in)
    holding the model, `labels.txt` (one class name per line, in output
    order), `deploy.json` (format, file, signatures, input shapes,
    quantization) and the package's marker (`mrrn_keras.files.OWNED_MARKER`);
    `overwrite` replaces only a folder with that marker, and the temporary
    folders of killed exports are removed by the next export beside them.

        litert              model.tflite: `serving_default`, frames uint8
                            (1, frames, H, W, 3) -> probabilities (1, K)
        litert, stream      stream.tflite: `init_states`, `step` on
                            (1, chunk_frames, H, W, 3) (mrrn_keras.deploy.stream),
                            and, when the window length is known, `frame_taps`
                            on (1, H, W, 3) and `window` on (1, frames, C)
        savedmodel, stream  a SavedModel in `out`: `init_states(batch_size)`,
                            `step` on (B, T, H, W, 3), any B and T, and the
                            timeline's `frame_taps` (N, H, W, 3) and `window`
                            (B, T, C); `deploy.json` says the window's frames
                            and sampling under `timeline`
        onnx                model.onnx: frames uint8 (1, frames, H, W, 3) ->
                            probabilities (1, K)

    Args:
        model_or_variant: an `MRRN` or a zoo variant name / entry folder.
        out: the folder to write (the TF Serving base for plain SavedModels).
        format: one of `FORMATS`. Defaults to `"savedmodel"`.
        stream: export the streaming model with explicit state (SavedModel
            or LiteRT). Defaults to `False`.
        quantization: LiteRT clip model only: None, `"dynamic"` or `"int8"`
            (`mrrn_keras.deploy.litert`).
        representative: uint8 clips `(frames, H, W, 3)` or video files
            (sampled like the model's input) to calibrate `"int8"`. Defaults to 64 clips of the motion generator for an
            entry trained on it; required otherwise.
        frames: clip length of the LiteRT/ONNX clip model, or with `stream`
            the frames per timeline window. Defaults to the variant's frame
            count (a streaming LiteRT file of a bare model then has no
            timeline signatures).
        chunk_frames: frames per `step` of the streaming LiteRT model.
            Defaults to `1`.
        labels: class names. Defaults to the model's, the variant's, else
            `class_<i>`.
        overwrite: replace an existing `out` that an earlier export wrote.
            Defaults to `False`.

    Returns:
        The written path: the model file (LiteRT, ONNX), the SavedModel
        folder (stream), or the version folder (TF Serving).

    Raises:
        ValueError: an invalid argument or combination.
        mrrn_keras.errors.ExistingPathError: `out` exists and `overwrite` is
            false, or it is a file, a symbolic link or a folder this package
            did not export (checked before converting; a FileExistsError).
        ExportError: the conversion failed or `out` cannot be written.
        mrrn_keras.errors.BackendError: under a backend other than TensorFlow.
    """
    require_tensorflow_backend(f"{format} export")
    if format not in FORMATS:
        raise ValueError(f"`format` must be one of {FORMATS}. Received: format={format!r}")
    if stream and format == "onnx":
        raise ValueError("The streaming model is exported as savedmodel or litert. "
                         "Received: format='onnx', stream=True")
    if quantization is not None and (format != "litert" or stream):
        raise ValueError(
            "Quantization applies to the LiteRT clip model only. "
            f"Received: quantization={quantization!r}, format={format!r}, stream={stream!r}"
        )
    for name, value in (("frames", frames), ("chunk_frames", chunk_frames)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                                  or value <= 0):
            raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")
    from mrrn_keras import export as serving

    if format == "savedmodel" and not stream:
        return serving.export_for_serving(
            model_or_variant, out, labels=labels, frames=frames, overwrite=overwrite,
            **serving_kwargs,
        )
    if serving_kwargs:
        raise ValueError(f"Only the TF Serving export takes {sorted(serving_kwargs)}")

    from mrrn_keras.labels import resolve_labels

    model, info = serving._resolve_model(model_or_variant)
    output = model.output["probabilities"] if isinstance(model.output, dict) else model.output
    num_classes = int(output.shape[-1])
    labels = resolve_labels(labels, model, info, num_classes)
    frame_shape = serving._resolve_image_size(None, getattr(model, "image_size", None), info)
    if frames is None and not stream:
        if info is None:
            raise ValueError(f"A {format} clip model has a fixed clip length: pass `frames`. "
                             "Received: frames=None")
        frames = int(info.input["frames"])
    # The timeline signatures sample the entry's frames per window, as it says.
    if stream and frames is None and info is not None:
        frames = int(info.input["frames"])
    sampling = info.input["sampling"] if info is not None else "segments"
    if quantization == "int8":
        representative = (
            _motion_clips(info, frames, frame_shape) if representative is None
            else [_as_clip(item, frames, frame_shape) for item in representative]
        )

    out = pathlib.Path(out)
    # Before converting: only an export folder this package wrote is replaced.
    check_replaceable(out, EXPORT_KIND, overwrite=overwrite)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        scratch = scratch_folder(out.parent, f"{TEMP_PREFIX}{out.name}-")
        tmp = scratch / "export"
        tmp.mkdir()
    except OSError as err:
        raise ExportError(f"Cannot write next to {out}: {err.strerror or err}") from err
    try:
        manifest = _write(model, tmp, format=format, stream=stream, quantization=quantization,
                          representative=representative, frames=frames,
                          chunk_frames=chunk_frames, frame_shape=frame_shape)
        if stream:
            manifest["timeline"] = {"frames": frames, "sampling": sampling}
        (tmp / LABELS_FILE).write_text("".join(f"{label}\n" for label in labels))
        manifest.update(labels=LABELS_FILE, num_classes=num_classes,
                        variant=info.name if info is not None else None)
        (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
        mark_owned(tmp, EXPORT_KIND)
        # Again: a folder may have taken the place while converting.
        check_replaceable(out, EXPORT_KIND, overwrite=overwrite)
        replace_folder(tmp, out, overwrite=overwrite)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    logger.info("Exported %s as %s to %s", model.name, format, out)
    return out / manifest["file"] if manifest["file"] != "." else out


def _write(model, folder, *, format, stream, quantization, representative, frames,
           chunk_frames, frame_shape) -> dict:
    from mrrn_keras.deploy import litert, stream as stream_lib

    height, width = frame_shape
    work = folder / ".work"
    work.mkdir()
    try:
        if stream and format == "savedmodel":
            stream_lib.export_stream_savedmodel(model, work / "sm", frame_shape=frame_shape)
            for item in (work / "sm").iterdir():
                os.rename(item, folder / item.name)
            return {
                "format": "savedmodel", "file": ".", "stream": True,
                "signatures": {
                    stream_lib.INIT_SIGNATURE: {"batch_size": "int32 ()"},
                    stream_lib.STEP_SIGNATURE: {"frames": f"uint8 (B, T, {height}, {width}, 3)"},
                    stream_lib.TAPS_SIGNATURE: {"frames": f"uint8 (N, {height}, {width}, 3)"},
                    stream_lib.WINDOW_SIGNATURE: {"<stream>_taps": "float32 (B, T, C)"},
                },
            }
        if stream:
            data = litert.stream_flatbuffer(model, work, frame_shape=frame_shape,
                                            chunk_frames=chunk_frames, window_frames=frames)
            (folder / "stream.tflite").write_bytes(data)
            signatures = {
                stream_lib.INIT_SIGNATURE: {},
                stream_lib.STEP_SIGNATURE: {
                    "frames": f"uint8 (1, {chunk_frames}, {height}, {width}, 3)"},
            }
            if frames is not None:
                signatures[stream_lib.TAPS_SIGNATURE] = {
                    "frames": f"uint8 (1, {height}, {width}, 3)"}
                signatures[stream_lib.WINDOW_SIGNATURE] = {
                    "<stream>_taps": f"float32 (1, {frames}, C)"}
            return {"format": "litert", "file": "stream.tflite", "stream": True,
                    "signatures": signatures}
        data = litert.clip_flatbuffer(model, work, frames=frames, frame_shape=frame_shape,
                                      quantization=quantization, representative=representative)
        shape = f"uint8 (1, {frames}, {height}, {width}, 3)"
        if format == "onnx":
            from mrrn_keras.deploy.onnx import onnx_from_litert

            (folder / "model.onnx").write_bytes(onnx_from_litert(data, work))
            return {"format": "onnx", "file": "model.onnx", "stream": False,
                    "inputs": {"frames": shape}, "outputs": {"probabilities": "float32 (1, K)"}}
        (folder / "model.tflite").write_bytes(data)
        return {
            "format": "litert", "file": "model.tflite", "stream": False,
            "quantization": quantization,
            "signatures": {litert.CLIP_SIGNATURE: {"frames": shape}},
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _motion_clips(info, frames, frame_shape):
    if info is None or not info.dataset or info.dataset.get("name") != MOTION_DATASET:
        raise ValueError(
            "`quantization='int8'` calibrates on representative clips: pass `representative` "
            "(uint8 clips of the model's input shape) for a model not trained on the motion "
            "data. Received: representative=None"
        )
    from mrrn_keras.data.synthetic import MOTION_CLASSES, render_dataset

    per_class = -(-64 // len(MOTION_CLASSES))
    clips, _ = render_dataset(per_class, frames=frames, size=frame_shape[0],
                              seed=CALIBRATION_SEED)
    return list(clips)


def _as_clip(item, frames, frame_shape):
    """A calibration clip: an array as given, or a video file sampled like the model's input."""
    if isinstance(item, (str, os.PathLike)):
        from mrrn_keras.data.video import load_clip

        return load_clip(item, frames, size=tuple(frame_shape))
    return np.asarray(item, np.uint8)
