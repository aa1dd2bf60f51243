"""Streaming signatures with explicit state, and the streaming SavedModel.

As MoViNet's stream exports: the caller holds the state. Two signatures:

    init_states   -> {state name: zeros (or -inf for max pooling)}
    step          frames uint8 (B, T_chunk, H, W, 3) + every state
                  -> probabilities float32 (B, K) for all frames so far
                     + every new state (same names)

State names (`mrrn_keras.deploy.parts.flatten_state`):
`<stream>_sru_<i>_c` float32 (B, units), `<stream>_pool` float32
(B, width), `frames_seen` float32 (). Feeding a clip chunk by chunk,
starting from `init_states` and passing each step's states to the next,
gives the one-shot model's probabilities on all frames so far.
"""

import pathlib

import tensorflow as tf

from mrrn_keras.deploy.frozen import named_function
from mrrn_keras.deploy.parts import flatten_state, stream_parts, unflatten_state

INIT_SIGNATURE = "init_states"
STEP_SIGNATURE = "step"
PROBABILITIES = "probabilities"
FRAMES_INPUT = "frames"
BATCH_INPUT = "batch_size"


def stream_functions(model, *, frame_shape, implementation, batch=None, chunk_frames=None):
    """The `init_states` and `step` concrete functions of `model`.

    Args:
        model: an `MRRN`.
        frame_shape: `(height, width)` of the frames.
        implementation: SRU implementation traced (`"scan"` for LiteRT,
            `"graph"` for a SavedModel).
        batch: a fixed batch size (LiteRT), or None for any: `init_states`
            then takes `batch_size`, an int32 scalar.
        chunk_frames: a fixed chunk length, or None for any.

    Returns:
        `{"init_states": ConcreteFunction, "step": ConcreteFunction}`.
    """
    previous = model.implementation
    model.set_implementation(implementation)
    try:
        parts = stream_parts(model)
    finally:
        model.set_implementation(previous)
    example = flatten_state(parts.initial_state(1))
    state_specs = [
        tf.TensorSpec([batch] + list(value.shape[1:]) if value.shape.rank else [], tf.float32,
                      name=name)
        for name, value in example.items()
    ]
    height, width = frame_shape
    frames_spec = tf.TensorSpec(
        [batch, chunk_frames, height, width, 3], tf.uint8, name=FRAMES_INPUT
    )

    def step(inputs):
        frames = inputs.pop(FRAMES_INPUT)
        state = unflatten_state(inputs, parts.streams)
        new_state, fused, _ = parts.advance(frames, state)
        return {PROBABILITIES: tf.cast(fused, tf.float32), **flatten_state(new_state)}

    def init(inputs):
        size = batch if batch is not None else inputs[BATCH_INPUT]
        return {k: tf.cast(v, tf.float32) for k, v in flatten_state(parts.initial_state(size)).items()}

    init_specs = [] if batch is not None else [tf.TensorSpec([], tf.int32, name=BATCH_INPUT)]
    return {
        INIT_SIGNATURE: named_function(init, init_specs).get_concrete_function(),
        STEP_SIGNATURE: named_function(step, [frames_spec] + state_specs).get_concrete_function(),
    }


def export_stream_savedmodel(model, path, *, frame_shape) -> pathlib.Path:
    """Writes the streaming SavedModel (any batch, any chunk length) to `path`.

    The SRUs run as plain graph loops (no XLA: TF Serving's default), the
    weights are frozen into the graph.
    """
    from mrrn_keras.deploy.frozen import save_frozen

    functions = stream_functions(model, frame_shape=frame_shape, implementation="graph")
    return save_frozen(functions, path)
