"""The streaming parts of an MRRN, and the names of its states.

This is the only module of `mrrn_keras.deploy` that knows how a model is put
together: it borrows `mrrn_keras.streaming.StreamingClassifier`'s initial
state and per-chunk step, and flattens their nested state into named
tensors for exported signatures.
"""

import dataclasses
from collections.abc import Callable

FRAMES_SEEN = "frames_seen"


@dataclasses.dataclass(frozen=True)
class StreamParts:
    """What an exported streaming model is traced from.

    Attributes:
        initial_state: `batch -> state`, the state before any frame.
        advance: `(frames, state) -> (state, fused, per_stream)`: one chunk
            `(B, T_chunk, H, W, 3)` through the backbone, the SRUs continued
            from `state` and the running time pooling.
        streams: the model's stream names.
    """

    initial_state: Callable
    advance: Callable
    streams: tuple


def stream_parts(model) -> StreamParts:
    """The streaming parts of `model` (an `MRRN`), with its current weights.

    The SRUs are cloned with the model's `implementation` at this call: set
    it first (`model.set_implementation`) to choose what gets exported.
    """
    # Imported here: streaming imports the model, which export modules should
    # only load when they run.
    from mrrn_keras.streaming import StreamingClassifier

    classifier = StreamingClassifier(model)
    return StreamParts(
        classifier._initial_state, classifier._advance_graph, tuple(classifier.streams)
    )


def has_state_gates(model) -> bool:
    """Whether `model`'s SRUs read `c_{t-1}` (then they have no parallel scan)."""
    return bool(model.backbone.state_gates)


def flatten_state(state) -> dict:
    """Nested streaming state -> `{name: tensor}`.

    Names: `<stream>_sru_<i>_c` (the i-th SRU's cell state, `(B, units)`),
    `<stream>_pool` (the running time pooling: the last output, the running
    sum or the running maximum, `(B, width)`) and `frames_seen` (frames
    consumed so far, a float32 scalar; the mean's divisor).
    """
    flat = {}
    for stream, parts in state.items():
        for i, c in enumerate(parts["c"]):
            flat[f"{stream}_sru_{i}_c"] = c
        flat[f"{stream}_pool"] = parts["pool"]
        flat[FRAMES_SEEN] = parts["count"]
    return flat


def unflatten_state(flat: dict, streams) -> dict:
    """`flatten_state`'s inverse."""
    state = {}
    for stream in streams:
        cells = []
        while f"{stream}_sru_{len(cells)}_c" in flat:
            cells.append(flat[f"{stream}_sru_{len(cells)}_c"])
        state[stream] = {
            "c": cells, "pool": flat[f"{stream}_pool"], "count": flat[FRAMES_SEEN]
        }
    return state
