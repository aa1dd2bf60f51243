"""Late fusion of the streams' class probabilities."""

import math

import keras
from keras import ops

from mrrn_keras.validation import check_choice, check_int

FUSIONS = ("fixed", "learned")


@keras.saving.register_keras_serializable(package="mrrn_keras")
class StreamFusion(keras.layers.Layer):
    """Weighted average of per-stream softmax scores.

    `fixed` uses `fusion_weights` normalised to sum to one. `learned` keeps
    one scalar logit per stream, starts from `log(fusion_weights)` and
    applies a softmax, so the fused output is always a convex combination of
    the streams' probabilities (and therefore a probability distribution
    itself).

    Args:
        fusion: str. `"fixed"` or `"learned"`. Defaults to `"fixed"`.
        fusion_weights: sequence of positive floats, one per stream, or
            `None` for equal weights (the MRRN default). Defaults to `None`.
        num_streams: int. Number of streams. Defaults to the length of
            `fusion_weights`, or 3.
        **kwargs: base layer arguments.

    Call arguments:
        inputs: list of `(batch, classes)` probability tensors, one per
            stream, in the order of `fusion_weights`.

    Returns:
        `(batch, classes)` fused probabilities.

    Raises:
        ValueError: for an invalid argument, or a number of inputs other
            than `num_streams`.

    Example:

    >>> import numpy as np
    >>> fusion = StreamFusion(fusion_weights=(1.0, 3.0))
    >>> np.asarray(fusion.stream_weights()).tolist()
    [0.25, 0.75]
    >>> a, b = np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]])
    >>> np.asarray(fusion([a, b])).round(2).tolist()
    [[0.25, 0.75]]
    """

    def __init__(self, fusion="fixed", fusion_weights=None, num_streams=None, **kwargs):
        super().__init__(**kwargs)
        check_choice("fusion", fusion, FUSIONS)
        if num_streams is None:
            num_streams = 3 if fusion_weights is None else len(fusion_weights)
        num_streams = check_int("num_streams", num_streams)
        if fusion_weights is None:
            fusion_weights = (1.0,) * num_streams
        fusion_weights = tuple(float(w) for w in fusion_weights)
        if len(fusion_weights) != num_streams or any(
            not math.isfinite(w) or w <= 0 for w in fusion_weights
        ):
            raise ValueError(
                f"`fusion_weights` must hold {num_streams} positive finite numbers, "
                f"one per stream. Received: fusion_weights={fusion_weights!r}"
            )
        self.fusion = fusion
        self.fusion_weights = fusion_weights
        self.num_streams = num_streams
        self.logits = None

    def build(self, input_shape):
        if len(input_shape) != self.num_streams:
            raise ValueError(
                f"StreamFusion expects {self.num_streams} stream inputs. "
                f"Received: input_shape={input_shape}"
            )
        if self.fusion == "learned":
            self.logits = self.add_weight(
                name="logits",
                shape=(self.num_streams,),
                initializer=keras.initializers.Constant(
                    [math.log(w) for w in self.fusion_weights]
                ),
            )

    def stream_weights(self):
        """The normalised per-stream weights, a `(num_streams,)` tensor.

        Before `build` (and always for `fixed`) these are `fusion_weights`
        normalised to sum to one; once built, `learned` reads its logits.
        """
        if self.logits is not None:
            return ops.softmax(self.logits)
        total = sum(self.fusion_weights)
        return ops.convert_to_tensor([w / total for w in self.fusion_weights])

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
                "fusion_weights": list(self.fusion_weights),
                "num_streams": self.num_streams,
            }
        )
        return config
