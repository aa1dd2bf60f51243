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

The same exports also serve timelines (`timeline_functions`): `frame_taps`
(frames -> per-frame tap vectors) and `window` (a window's gathered tap
vectors -> probabilities, SRUs from zero). Resetting the `step` state per
window would send each frame through the backbone once per window holding
it (window / stride times, 4 with the defaults); the taps signature keeps it
at once per frame, as `mrrn predict --timeline` does.
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
TAPS_SIGNATURE = "frame_taps"
WINDOW_SIGNATURE = "window"


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
    return _keeping(parts, {
        INIT_SIGNATURE: named_function(init, init_specs).get_concrete_function(),
        STEP_SIGNATURE: named_function(step, [frames_spec] + state_specs).get_concrete_function(),
    })


def _keeping(owner, functions: dict) -> dict:
    """`functions`, each holding `owner`, whose variables (SRU clones) the graphs read.

    A concrete function refers to its variables weakly: without this, a garbage
    collection between tracing and saving deletes them and freezing fails
    ("Called a function referencing variables which have been deleted").
    """
    for function in functions.values():
        function._mrrn_owner = owner
    return functions


def export_stream_savedmodel(model, path, *, frame_shape) -> pathlib.Path:
    """Writes the streaming SavedModel (any batch, any chunk length) to `path`.

    Signatures: `init_states`, `step`, and the timeline's `frame_taps` and
    `window` (any frame count, window batch and length).

    The SRUs run as plain graph loops (no XLA: TF Serving's default), the
    weights are frozen into the graph.
    """
    from mrrn_keras.deploy.frozen import save_frozen

    functions = stream_functions(model, frame_shape=frame_shape, implementation="graph")
    functions.update(timeline_functions(model, frame_shape=frame_shape, implementation="graph"))
    return save_frozen(functions, path)


def timeline_functions(model, *, frame_shape, implementation, window_frames=None,
                       batch=None):
    """The `frame_taps` and `window` concrete functions: what `--timeline` runs, exported.

    A timeline reuses each frame's taps in every window that samples it
    (`mrrn_keras.timelines`), so the backbone, by far the costliest part,
    runs once per frame; only the SRU stacks, time pooling, heads and
    fusion run per window, from a zero state:

        frame_taps  frames uint8 (N, H, W, 3) -> <stream>_taps float32 (N, C)
        window      <stream>_taps float32 (B, T, C) -> probabilities (B, K)

    Args:
        model: an `MRRN`.
        frame_shape: `(height, width)` of the frames.
        implementation: SRU implementation traced (as `stream_functions`).
        window_frames: the fixed window length T (LiteRT), or None for any.
        batch: the fixed frame count N and window batch B (LiteRT: 1), or
            None for any.

    Returns:
        `{"frame_taps": ConcreteFunction, "window": ConcreteFunction}`.
    """
    from mrrn_keras.timelines import TimelineClassifier

    classifier = TimelineClassifier(model)
    height, width = frame_shape
    frames_spec = tf.TensorSpec([batch, height, width, 3], tf.uint8, name=FRAMES_INPUT)
    tap_specs = [tf.TensorSpec([batch, window_frames, channels], tf.float32, name=tap_name(s))
                 for s, channels in classifier.tap_channels.items()]

    def frame_taps(inputs):
        # (N, H, W, 3) -> (1, N, H, W, 3): the frames as one clip; taps are per frame.
        taps = classifier._taps(inputs[FRAMES_INPUT][None], training=False)
        return {tap_name(s): tf.cast(taps[s][0], tf.float32) for s in classifier.streams}

    def window(inputs):
        taps = {s: inputs[tap_name(s)] for s in classifier.streams}
        return {PROBABILITIES: tf.cast(classifier.window_probabilities(taps), tf.float32)}

    # The window runs the model's own SRUs: traced while they use `implementation`.
    previous = model.implementation
    model.set_implementation(implementation)
    try:
        return _keeping(classifier, {
            TAPS_SIGNATURE: named_function(frame_taps, [frames_spec]).get_concrete_function(),
            WINDOW_SIGNATURE: named_function(window, tap_specs).get_concrete_function(),
        })
    finally:
        model.set_implementation(previous)


def tap_name(stream: str) -> str:
    """The `frame_taps` output / `window` input name of a stream's tap vectors."""
    return f"{stream}_taps"
