"""LiteRT (TFLite) files on built-in ops only.

Keras's own `model.export(format="litert")` of an MRRN needs TensorFlow
Select (Flex) ops: the SRU's step loop keeps its outputs in TensorLists. The
2017 SRU (`state_gates=False`) has a linear recurrence that the parallel
scan (`implementation="scan"`) evaluates with plain elementwise ops once the
sequence length is static, so these files fix the clip length (or the chunk
length) and the batch size (1), trace the scan, freeze the weights
(`mrrn_keras.deploy.frozen`) and convert with `TFLITE_BUILTINS` only.

Quantization (`quantization=`):
    None        float32 everywhere.
    "dynamic"   dynamic-range: weights int8, activations float at run time.
    "int8"      weights and activations int8 where a built-in int8 kernel
                exists (calibrated on representative clips), float32
                elsewhere; input stays uint8 frames, output float32.
"""

import pathlib

import numpy as np
import tensorflow as tf

from mrrn_keras.deploy.frozen import named_function, save_frozen
from mrrn_keras.deploy.parts import has_state_gates
from mrrn_keras.deploy.stream import (
    FRAMES_INPUT,
    PROBABILITIES,
    stream_functions,
    timeline_functions,
)
from mrrn_keras.errors import ExportError

CLIP_SIGNATURE = "serving_default"
QUANTIZATIONS = (None, "dynamic", "int8")
DEFAULT_CALIBRATION_CLIPS = 64


def clip_function(model, *, frames, frame_shape, implementation="scan"):
    """The one-shot model as a concrete function of uint8 `(1, frames, H, W, 3)`."""
    previous = model.implementation
    model.set_implementation(implementation)
    try:
        height, width = frame_shape
        spec = tf.TensorSpec([1, frames, height, width, 3], tf.uint8, name=FRAMES_INPUT)

        def predict(inputs):
            probabilities = model(inputs[FRAMES_INPUT], training=False)
            if isinstance(probabilities, dict):
                probabilities = probabilities[PROBABILITIES]
            return {PROBABILITIES: tf.cast(probabilities, tf.float32)}

        return named_function(predict, [spec]).get_concrete_function()
    finally:
        model.set_implementation(previous)


def convert(functions: dict, workdir, *, quantization=None, representative=None) -> bytes:
    """Converts `{signature: concrete function}` to a LiteRT flatbuffer.

    Args:
        functions: concrete functions taking named specs, returning dicts.
        workdir: an empty folder for the frozen SavedModel.
        quantization: one of `QUANTIZATIONS`.
        representative: for `"int8"`, an iterable of uint8 clips
            `(frames, H, W, 3)` shaped like the `frames` input.
    """
    if quantization not in QUANTIZATIONS:
        raise ValueError(
            f"`quantization` must be one of {QUANTIZATIONS}. Received: quantization={quantization!r}"
        )
    saved = save_frozen(functions, pathlib.Path(workdir) / "frozen")
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved), signature_keys=list(functions))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantization is not None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantization == "int8":
        if representative is None:
            raise ValueError("`quantization='int8'` needs representative clips. Received: None")
        clips = list(representative)

        def calibration():
            for clip in clips:
                yield [np.asarray(clip, np.uint8)[None]]

        converter.representative_dataset = calibration
    try:
        flatbuffer = converter.convert()
    except Exception as err:  # the converter raises ConverterError and others
        raise ExportError(f"LiteRT conversion failed: {' '.join(str(err).split())[:2000]}") from err
    custom = custom_ops(flatbuffer)
    if custom:
        raise ExportError(
            f"The LiteRT file would need ops outside the built-in set: {sorted(custom)}"
        )
    return flatbuffer


def custom_ops(flatbuffer: bytes) -> set[str]:
    """Names of the custom (including Flex) ops a LiteRT flatbuffer uses.

    TensorFlow's own `tf.lite.Interpreter` links the Flex delegate, so
    loading a file there proves nothing about built-in ops: the op table is
    read instead.
    """
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.Model.GetRootAsModel(flatbuffer, 0)
    names = set()
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i)
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        if builtin == schema.BuiltinOperator.CUSTOM:
            names.add((code.CustomCode() or b"?").decode())
    return names


def clip_flatbuffer(model, workdir, *, frames, frame_shape, quantization=None,
                    representative=None) -> bytes:
    """The one-shot model `(1, frames, H, W, 3)` uint8 -> probabilities, as LiteRT."""
    _check_scan(model)
    function = clip_function(model, frames=frames, frame_shape=frame_shape)
    return convert({CLIP_SIGNATURE: function}, workdir, quantization=quantization,
                   representative=representative)


def stream_flatbuffer(model, workdir, *, frame_shape, chunk_frames=1,
                      window_frames=None) -> bytes:
    """The streaming model (`init_states`, `step` on `chunk_frames` frames, batch 1).

    With `window_frames`, also the timeline's `frame_taps` (one frame
    `(1, H, W, 3)`) and `window` (`(1, window_frames, C)` taps per stream),
    `mrrn_keras.deploy.stream.timeline_functions`.
    """
    _check_scan(model)
    functions = stream_functions(
        model, frame_shape=frame_shape, implementation="scan", batch=1, chunk_frames=chunk_frames
    )
    if window_frames is not None:
        functions.update(timeline_functions(model, frame_shape=frame_shape, implementation="scan",
                                            window_frames=window_frames, batch=1))
    return convert(functions, workdir)


def _check_scan(model):
    if has_state_gates(model):
        raise ExportError(
            "LiteRT on built-in ops needs the SRU's parallel scan, which only the 2017 form "
            "(state_gates=False) has; this model's SRUs have state gates, whose step loop "
            "needs TensorFlow Select (Flex) ops. Received: state_gates=True"
        )
