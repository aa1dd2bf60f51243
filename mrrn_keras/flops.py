"""Analytic multiply-add counts of a Keras model at a concrete input shape.

Counts the products that dominate the cost of MRRN and its twins: `Conv2D`
(`out_h * out_w * out_c * k_h * k_w * in_c / groups` per image), `Dense`
(`rows * in * out`), and the recurrent layers' matrix products: `SRU`
(`B * T * D * 3U`, plus `B * T * D * U` for the highway projection when
`D != U`; its recurrence is elementwise), `LSTM` (`B * T * (D + U) * 4U`) and
`GRU` (`B * T * (D + U) * 3U`). Elementwise work (batch norm, activations,
pooling, gates, the SRU recurrence) is not counted. FLOPs = 2 x multiply-adds,
the convention of TF's profiler for `Conv2D` and `MatMul`.

Shapes are propagated symbolically through the functional graph (nested
models included), so nothing is executed.
"""

import math
from collections import Counter

import keras

from mrrn_keras.layers.sru import SRU


def _known(shape, what):
    if any(d is None for d in shape):
        raise ValueError(
            f"Cannot count multiply-adds with unknown dimensions in {what}. "
            f"Received: shape={tuple(shape)}"
        )
    return shape


def _layer_macs(layer, input_shape, output_shape):
    if isinstance(layer, keras.layers.Conv2D):
        kh, kw = layer.kernel_size
        in_c = input_shape[-1] if layer.data_format == "channels_last" else input_shape[1]
        outputs = math.prod(_known(output_shape, layer.name))
        return outputs * kh * kw * in_c // layer.groups
    if isinstance(layer, keras.layers.Dense):
        return math.prod(_known(output_shape, layer.name)) * input_shape[-1]
    if isinstance(layer, (SRU, keras.layers.LSTM, keras.layers.GRU)):
        batch, steps, dim = _known(input_shape, layer.name)
        units = layer.units
        if isinstance(layer, SRU):
            return batch * steps * dim * (3 * units + (units if dim != units else 0))
        gates = 4 if isinstance(layer, keras.layers.LSTM) else 3
        return batch * steps * (dim + units) * gates * units
    return 0


def _walk(model, inputs, counts):
    def wrap(operation):
        def run(*args, **kwargs):
            if isinstance(operation, keras.Model) and hasattr(operation, "_run_through_graph"):
                return _walk(operation, args[0], counts)
            outputs = operation.compute_output_spec(*args, **kwargs)
            first_in = keras.tree.flatten(args)[0]
            first_out = keras.tree.flatten(outputs)[0]
            macs = _layer_macs(operation, tuple(first_in.shape), tuple(first_out.shape))
            if macs:
                counts[type(operation).__name__] += macs
            return outputs

        return run

    return model._run_through_graph(inputs, operation_fn=wrap)


def count_multiply_adds(model, input_shape) -> dict:
    """Multiply-adds of one call of a functional `model` on `input_shape`.

    Args:
        model: a functional `keras.Model` (e.g. `MRRN`) with one input.
        input_shape: the full input shape, batch included, e.g.
            `(1, 16, 112, 112, 3)` for one 16-frame clip.

    Returns:
        Dict `{layer class name: multiply-adds}` plus `"total"`.

    Raises:
        ValueError: if a counted layer's shape stays unknown.

    Example:

    >>> inputs = keras.Input((8,))
    >>> model = keras.Model(inputs, keras.layers.Dense(4)(inputs))
    >>> count_multiply_adds(model, (2, 8))
    {'Dense': 64, 'total': 64}
    """
    counts = Counter()
    dtype = model.inputs[0].dtype
    _walk(model, keras.KerasTensor(tuple(input_shape), dtype=dtype), counts)
    result = dict(counts)
    result["total"] = sum(counts.values())
    return result
