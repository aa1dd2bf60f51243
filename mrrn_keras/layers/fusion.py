"""Late fusion of the streams' class probabilities."""

import math

import keras
from keras import ops

FUSIONS = ("fixed", "learned")


@keras.saving.register_keras_serializable(package="mrrn_keras")
class StreamFusion(keras.layers.Layer):
    """Weighted average of per-stream softmax scores.

    `fixed` uses `weights` normalised to sum to one. `learned` keeps one
    scalar logit per stream, starts from `log(weights)` and applies a softmax,
    so the fused output is always a convex combination of the streams'
    probabilities (and therefore a probability distribution itself).

    Args:
        fusion: str. `"fixed"` or `"learned"`. Defaults to `"fixed"`.
        weights: sequence of positive floats, one per stream, or `None` for
            equal weights (the MRRN default). Defaults to `None`.
        num_streams: int. Number of streams. Defaults to the length of
            `weights`, or 3.
        **kwargs: base layer arguments.

    Call arguments:
        inputs: list of `(batch, classes)` probability tensors, one per
            stream, in the order of `weights`.

    Returns:
        `(batch, classes)` fused probabilities.

    Example:

    >>> import numpy as np
    >>> fusion = StreamFusion(weights=(1.0, 3.0))
    >>> a, b = np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]])
    >>> np.asarray(fusion([a, b])).round(2).tolist()
    [[0.25, 0.75]]
    """

    def __init__(self, fusion="fixed", weights=None, num_streams=None, **kwargs):
        super().__init__(**kwargs)
        if fusion not in FUSIONS:
            raise ValueError(
                f"`fusion` must be one of {FUSIONS}. Received: fusion={fusion!r}"
            )
        if num_streams is None:
            num_streams = 3 if weights is None else len(weights)
        if not isinstance(num_streams, int) or num_streams < 1:
            raise ValueError(
                "`num_streams` must be a positive integer. "
                f"Received: num_streams={num_streams!r}"
            )
        if weights is None:
            weights = (1.0,) * num_streams
        weights = tuple(float(w) for w in weights)
        if len(weights) != num_streams or any(
            not math.isfinite(w) or w <= 0 for w in weights
        ):
            raise ValueError(
                f"`weights` must hold {num_streams} positive finite numbers, "
                f"one per stream. Received: weights={weights!r}"
            )
        self.fusion = fusion
        self.weights_init = weights
        self.num_streams = num_streams

    def build(self, input_shape):
        if len(input_shape) != self.num_streams:
            raise ValueError(
                f"StreamFusion expects {self.num_streams} stream inputs. "
                f"Received: input_shape={input_shape}"
            )
        self.logits = None
        if self.fusion == "learned":
            log_weights = [math.log(w) for w in self.weights_init]
            self.logits = self.add_weight(
                name="logits",
                shape=(self.num_streams,),
                initializer=keras.initializers.Constant(log_weights),
            )

    def stream_weights(self):
        """The normalised per-stream weights, a `(num_streams,)` tensor."""
        if self.logits is not None:
            return ops.softmax(self.logits)
        total = sum(self.weights_init)
        return ops.convert_to_tensor([w / total for w in self.weights_init])

    def call(self, inputs):
        weights = ops.cast(self.stream_weights(), self.compute_dtype)
        # (S, B, K) weighted over S -> (B, K)
        stacked = ops.stack([ops.cast(p, self.compute_dtype) for p in inputs], axis=0)
        return ops.tensordot(weights, stacked, axes=1)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0])

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "fusion": self.fusion,
                "weights": list(self.weights_init),
                "num_streams": self.num_streams,
            }
        )
        return config
