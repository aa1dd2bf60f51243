import keras
import numpy as np
import pytest
from keras import ops

from mrrn_keras import SRU
from tests.helpers import BACKEND, assert_config_round_trip, layer_gradients, run_layer_test

pytestmark = pytest.mark.multi_backend
# "graph" is the TensorFlow loop without XLA; elsewhere it is the same loop as "xla".
LOOPS = ("xla", "graph") if BACKEND == "tensorflow" else ("xla",)
IMPLS = (*LOOPS, "reference")
tf_only = pytest.mark.skipif(BACKEND != "tensorflow", reason="TensorFlow graphs")


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def numpy_sru(layer, x, mask=None, c0=None):
    """Independent NumPy SRU following DESIGN.md; returns (sequence, last, c_T)."""
    weights = {w.path.split("/")[-1]: np.asarray(w) for w in layer.weights}
    u = layer.units
    batch, steps, _ = x.shape
    if mask is None:
        mask = np.ones((batch, steps), bool)
    if layer.go_backwards:
        x, mask = x[:, ::-1], mask[:, ::-1]
    big_u = x @ weights["kernel"]
    highway = x @ weights["projection_kernel"] if "projection_kernel" in weights else x
    v = weights.get("recurrent_weights", np.zeros(2 * u, np.float32))
    b = weights["bias"]
    c = np.zeros((batch, u), np.float32) if c0 is None else c0.copy()
    h = np.zeros((batch, u), np.float32)
    seq = np.zeros((batch, steps, u), np.float32)
    for t in range(steps):
        f = _sigmoid(big_u[:, t, u : 2 * u] + v[:u] * c + b[:u])
        r = _sigmoid(big_u[:, t, 2 * u :] + v[u:] * c + b[u:])
        c_new = f * c + (1 - f) * big_u[:, t, :u]
        h_new = r * np.tanh(c_new) + (1 - r) * highway[:, t]
        keep = mask[:, t, None]
        c = np.where(keep, c_new, c)
        h = np.where(keep, h_new, h)
        seq[:, t] = np.where(keep, h_new, 0.0) if layer.zero_output_for_mask else h
    return seq, h, c


def _random_weights(layer, seed=0):
    rng = np.random.default_rng(seed)
    layer.set_weights([rng.normal(0, 0.5, w.shape).astype("float32") for w in layer.weights])


def _inputs(batch=3, steps=7, dim=5, seed=1):
    return np.random.default_rng(seed).normal(size=(batch, steps, dim)).astype("float32")


def _mask(batch=3, steps=7):
    mask = np.ones((batch, steps), bool)
    mask[0, 5:] = False  # right padding
    mask[1, :2] = False  # left padding
    mask[2, 3] = False  # a hole
    return mask


CASES = {
    "equal_dims": dict(dim=6, kwargs={}),
    "projection": dict(dim=5, kwargs={}),
    "mask": dict(dim=5, kwargs={}, mask=True),
    "go_backwards": dict(dim=5, kwargs={"go_backwards": True}, mask=True),
    "paper_form": dict(dim=5, kwargs={"state_gates": False}, mask=True),
    "initial_state": dict(dim=6, kwargs={}, c0=True),
    "zero_output_for_mask": dict(dim=5, kwargs={"zero_output_for_mask": True}, mask=True),
}


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_forward_matches_numpy(case, impl):
    spec = CASES[case]
    x = _inputs(dim=spec["dim"])
    mask = _mask() if spec.get("mask") else None
    c0 = np.random.default_rng(2).normal(size=(3, 6)).astype("float32") if spec.get("c0") else None
    layer = SRU(6, return_sequences=True, return_state=True, implementation=impl, **spec["kwargs"])
    layer.build(x.shape)
    _random_weights(layer)
    seq, c_last = layer(x, mask=mask, initial_state=c0)
    want_seq, want_last, want_c = numpy_sru(layer, x, mask, c0)
    np.testing.assert_allclose(seq, want_seq, atol=1e-5)
    np.testing.assert_allclose(c_last, want_c, atol=1e-5)

    last_layer = SRU.from_config({**layer.get_config(), "return_sequences": False})
    last_layer.build(x.shape)
    last_layer.set_weights(layer.get_weights())
    out, _ = last_layer(x, mask=mask, initial_state=c0)
    np.testing.assert_allclose(out, want_last, atol=1e-5)


@pytest.mark.parametrize("impl", ("xla", "reference"))
def test_bidirectional_matches_numpy(impl):
    x, mask = _inputs(), _mask()
    bi = keras.layers.Bidirectional(SRU(4, return_sequences=True, implementation=impl))
    bi.build(x.shape)
    _random_weights(bi)
    got = np.asarray(bi(x, mask=mask))
    fwd, _, _ = numpy_sru(bi.forward_layer, x, mask)
    bwd, _, _ = numpy_sru(bi.backward_layer, x, mask)
    np.testing.assert_allclose(got, np.concatenate([fwd, bwd[:, ::-1]], -1), atol=1e-5)


def test_bidirectional_return_state():
    x = _inputs()
    bi = keras.layers.Bidirectional(SRU(4, return_state=True))
    out, c_fwd, c_bwd = bi(x)
    assert out.shape == (3, 8) and c_fwd.shape == (3, 4) and c_bwd.shape == (3, 4)
    _, _, want_c = numpy_sru(bi.backward_layer, x)
    np.testing.assert_allclose(c_bwd, want_c, atol=1e-5)


def _gradients(layer, x, mask, c0):
    weights = np.arange(layer.units, dtype="float32") - 2.0

    def objective(call, x, c0):
        seq, c_last = call(x, mask=mask, initial_state=c0)
        return ops.sum(ops.sin(seq) * weights) + ops.sum(c_last**2)

    return layer_gradients(layer, objective, [x, c0])


@pytest.mark.parametrize("impl", LOOPS)
@pytest.mark.parametrize("state_gates", (True, False))
@pytest.mark.parametrize("dim", (5, 6))
def test_gradient_matches_autodiff_reference(impl, state_gates, dim):
    x, mask = _inputs(dim=dim), _mask()
    c0 = np.random.default_rng(3).normal(size=(3, 6)).astype("float32")
    layers = {}
    for name in (impl, "reference"):
        layers[name] = SRU(
            6, return_sequences=True, return_state=True, implementation=name,
            state_gates=state_gates,
        )
        layers[name].build(x.shape)
        _random_weights(layers[name])
    fast = _gradients(layers[impl], x, mask, c0)
    ref = _gradients(layers["reference"], x, mask, c0)
    names = ["inputs", "initial_state"] + [w.path for w in layers[impl].trainable_weights]
    assert len(fast) == len(ref) == len(names)
    for name, a, b in zip(names, fast, ref):
        np.testing.assert_allclose(a, b, atol=1e-4, err_msg=name)


def _paper_layers(dim, steps, impls, **kwargs):
    """Same-weight `state_gates=False` SRUs, one per implementation."""
    layers = {}
    for impl in impls:
        layers[impl] = SRU(
            6, return_sequences=True, return_state=True, state_gates=False,
            implementation=impl, **kwargs,
        )
        layers[impl].build((3, steps, dim))
        _random_weights(layers[impl])
    return layers


def _random_mask(steps, seed=4):
    mask = np.random.default_rng(seed).random((3, steps)) > 0.3
    mask[0] = True
    return mask


@pytest.mark.parametrize("go_backwards", (False, True))
@pytest.mark.parametrize("steps", (1, 2, 7, 13, 16))
def test_scan_matches_loop_and_numpy(steps, go_backwards):
    x = _inputs(steps=steps, dim=5)
    mask = _random_mask(steps)
    c0 = np.random.default_rng(2).normal(size=(3, 6)).astype("float32")
    layers = _paper_layers(5, steps, ("scan", "xla"), go_backwards=go_backwards)
    want_seq, _, want_c = numpy_sru(layers["scan"], x, mask, c0)
    for impl, layer in layers.items():
        seq, c_last = layer(x, mask=mask, initial_state=c0)
        np.testing.assert_allclose(seq, want_seq, atol=1e-5, err_msg=impl)
        np.testing.assert_allclose(c_last, want_c, atol=1e-5, err_msg=impl)


@pytest.mark.parametrize("steps", (1, 7, 16))
@pytest.mark.parametrize("dim", (5, 6))
def test_scan_gradient_matches_loop_and_autodiff_reference(steps, dim):
    x, mask = _inputs(steps=steps, dim=dim), _random_mask(steps)
    c0 = np.random.default_rng(3).normal(size=(3, 6)).astype("float32")
    layers = _paper_layers(dim, steps, ("scan", "xla", "reference"))
    grads = {impl: _gradients(layer, x, mask, c0) for impl, layer in layers.items()}
    names = ["inputs", "initial_state"] + [w.path for w in layers["scan"].trainable_weights]
    for impl in ("xla", "reference"):
        assert len(grads["scan"]) == len(grads[impl]) == len(names)
        for name, a, b in zip(names, grads["scan"], grads[impl]):
            np.testing.assert_allclose(a, b, atol=1e-4, err_msg=f"{impl}: {name}")


@tf_only
def test_scan_with_length_unknown_at_trace_time():
    import tensorflow as tf

    # A graph traced for any T takes the Hillis-Steele form of the scan.
    layer = _paper_layers(5, 9, ("scan",))["scan"]
    spec = tf.TensorSpec((None, None, 5), tf.float32)
    mask_spec = tf.TensorSpec((None, None), tf.bool)
    call = tf.function(
        lambda x, mask: layer(x, mask=mask), input_signature=[spec, mask_spec]
    )

    def loss_and_grad(x, mask):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(tf.sin(layer(x, mask=mask)[0]))
        return tape.gradient(loss, x)

    grad = tf.function(loss_and_grad, input_signature=[spec, mask_spec])
    for steps in (1, 6, 9):
        x, mask = _inputs(steps=steps, dim=5), _random_mask(steps)
        seq, c_last = call(x, mask)
        want_seq, _, want_c = numpy_sru(layer, x, mask)
        np.testing.assert_allclose(seq, want_seq, atol=1e-5)
        np.testing.assert_allclose(c_last, want_c, atol=1e-5)
        np.testing.assert_allclose(
            grad(x, mask), tf.function(loss_and_grad)(tf.constant(x), mask), atol=1e-5
        )


@tf_only
@pytest.mark.parametrize("state_gates", (False, True))
def test_accelerator_plans_in_a_graph_traced_for_any_length(state_gates, monkeypatch):
    # On a GPU "auto" takes the scan (Hillis-Steele when T is unknown) or the
    # loop unrolled 8 steps (time padded inside the graph): both must trace
    # once for any T and match the autodiff reference.
    import tensorflow as tf

    from mrrn_keras.layers import recurrence

    monkeypatch.setattr(recurrence, "device_kind", lambda backend=None: "gpu")
    layers = {}
    for impl in ("auto", "reference"):
        layers[impl] = SRU(
            6, return_sequences=True, return_state=True, state_gates=state_gates,
            implementation=impl,
        )
        layers[impl].build((3, None, 5))
        _random_weights(layers[impl])
    assert layers["auto"]._plan(None).method == ("loop" if state_gates else "scan")

    def outputs_and_input_gradient(layer, x, mask):
        with tf.GradientTape() as tape:
            tape.watch(x)
            seq, c_last = layer(x, mask=mask)
            loss = tf.reduce_sum(tf.sin(seq)) + tf.reduce_sum(c_last**2)
        return seq, c_last, tape.gradient(loss, x)

    traced = tf.function(
        lambda x, mask: outputs_and_input_gradient(layers["auto"], x, mask),
        input_signature=[tf.TensorSpec((None, None, 5)), tf.TensorSpec((None, None), tf.bool)],
    )
    for steps in (1, 6, 9, 17):
        x, mask = tf.constant(_inputs(steps=steps, dim=5)), _random_mask(steps)
        got = traced(x, tf.constant(mask))
        want = outputs_and_input_gradient(layers["reference"], x, mask)
        for a, b in zip(got, want):
            np.testing.assert_allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("unroll", (2, 3, 8))
@pytest.mark.parametrize("state_gates", (True, False))
def test_unrolled_loop_matches_reference(unroll, state_gates, monkeypatch):
    # T = 7 is no multiple of 2, 3 or 8: the padding steps must change nothing.
    from mrrn_keras.layers import recurrence

    rule = recurrence.AutoRule(scan_min_steps=None, loop_unroll=unroll)
    monkeypatch.setitem(recurrence.AUTO_RULES, ("cpu", BACKEND), rule)
    monkeypatch.setattr(recurrence, "device_kind", lambda backend=None: "cpu")
    x, mask = _inputs(dim=5), _mask()
    c0 = np.random.default_rng(3).normal(size=(3, 6)).astype("float32")
    layers = {}
    for impl in ("auto", "reference"):
        layers[impl] = SRU(
            6, return_sequences=True, return_state=True, state_gates=state_gates,
            implementation=impl,
        )
        layers[impl].build(x.shape)
        _random_weights(layers[impl])
    assert layers["auto"]._plan(7) == recurrence.Plan("loop", unroll=unroll)
    for a, b in zip(layers["auto"](x, mask=mask, initial_state=c0), layers["reference"](x, mask=mask, initial_state=c0)):
        np.testing.assert_allclose(a, b, atol=1e-5)
    fast = _gradients(layers["auto"], x, mask, c0)
    ref = _gradients(layers["reference"], x, mask, c0)
    for a, b in zip(fast, ref):
        np.testing.assert_allclose(a, b, atol=1e-4)


def test_plan_follows_the_device(monkeypatch):
    from mrrn_keras.layers import recurrence

    paper, gated = SRU(4, state_gates=False), SRU(4)
    monkeypatch.setattr(recurrence, "device_kind", lambda backend=None: "gpu")
    assert paper._plan(64).method == "scan"
    assert gated._plan(64) == recurrence.Plan("loop", unroll=8)
    monkeypatch.setattr(recurrence, "device_kind", lambda backend=None: "cpu")
    assert paper._plan(64) == recurrence.choose_plan(
        "auto", state_gates=False, steps=64, device="cpu", backend=BACKEND
    )
    gated.implementation = "scan"  # as MRRN.set_implementation does
    with pytest.raises(ValueError, match="Received: implementation="):
        gated._plan(8)


@tf_only
def test_xla_and_graph_agree_on_long_sequences():
    x = _inputs(batch=2, steps=300, dim=8)
    layers = [SRU(8, return_sequences=True, implementation=i) for i in ("xla", "graph")]
    for layer in layers:
        layer.build(x.shape)
        _random_weights(layer)
    np.testing.assert_allclose(layers[0](x), layers[1](x), atol=1e-5)


def test_masked_steps_change_nothing():
    x = _inputs()
    padded = np.concatenate([x, 100 * _inputs(seed=9)[:, :3]], axis=1)
    mask = np.concatenate([np.ones((3, 7), bool), np.zeros((3, 3), bool)], axis=1)
    layer = SRU(6, return_state=True)
    layer.build(x.shape)
    _random_weights(layer)
    out, c = layer(x)
    out_p, c_p = layer(padded, mask=mask)
    np.testing.assert_allclose(out, out_p, atol=1e-6)
    np.testing.assert_allclose(c, c_p, atol=1e-6)


@pytest.mark.parametrize("chunks", (1, 2, 4))
def test_streaming_in_chunks_equals_whole_clip(chunks):
    x = _inputs(steps=8)
    layer = SRU(6, return_sequences=True, return_state=True)
    layer.build(x.shape)
    _random_weights(layer)
    whole, c_whole = layer(x)
    outs, c = [], None
    for part in np.split(x, chunks, axis=1):
        out, c = layer(part, initial_state=c)
        outs.append(np.asarray(out))
    np.testing.assert_allclose(np.concatenate(outs, 1), whole, atol=1e-5)
    np.testing.assert_allclose(c, c_whole, atol=1e-5)


def test_each_sample_alone_equals_its_row():
    x = _inputs()
    layer = SRU(6, return_sequences=True)
    layer.build(x.shape)
    _random_weights(layer)
    batched = np.asarray(layer(x))
    for i in range(len(x)):
        np.testing.assert_allclose(layer(x[i : i + 1])[0], batched[i], atol=1e-6)


def test_variable_length_at_call_time():
    layer = SRU(4)
    for steps in (1, 3, 11):
        assert layer(_inputs(steps=steps)).shape == (3, 4)


def test_dropout_only_in_training_and_per_sequence():
    x = np.ones((4, 6, 8), "float32")
    layer = SRU(8, return_sequences=True, dropout=0.5, seed=3)
    layer.build(x.shape)
    np.testing.assert_allclose(layer(x), layer(x), atol=0)
    assert not np.allclose(layer(x, training=True), layer(x))
    # With a zero kernel, only the highway carries x: a per-sequence input mask
    # zeroes the same features at every step.
    layer.kernel.assign(np.zeros(layer.kernel.shape, "float32"))
    out = np.asarray(layer(x, training=True))
    dropped = out == 0.0
    assert dropped.any() and (dropped == dropped[:, :1]).all()


def test_recurrent_dropout_mask_is_shared_over_time():
    x = np.random.default_rng(0).normal(size=(4, 6, 8)).astype("float32")
    plain = SRU(8, return_sequences=True)
    dropped = SRU(8, return_sequences=True, recurrent_dropout=0.5, seed=1)
    for layer in (plain, dropped):
        layer.build(x.shape)
        _random_weights(layer)
    # With r forced to 1 (large reset bias) h = tanh(c) * mask exactly.
    for layer in (plain, dropped):
        bias = np.array(layer.bias)
        bias[8:] = 50.0
        layer.bias.assign(bias)
    out = np.asarray(dropped(x, training=True))
    zero = out == 0
    assert zero.any() and (zero == zero[:, :1]).all()
    np.testing.assert_allclose(out[~zero], 2 * np.asarray(plain(x))[~zero], atol=1e-5)


def test_public_weight_layout():
    layer = SRU(4)
    layer.build((None, None, 3))
    shapes = {w.path.split("/")[-1]: tuple(w.shape) for w in layer.weights}
    assert shapes == {
        "kernel": (3, 12),
        "projection_kernel": (3, 4),
        "recurrent_weights": (8,),
        "bias": (8,),
    }
    paper = SRU(4, state_gates=False, highway_bias=-1.0)
    paper.build((None, None, 4))
    assert [w.path.split("/")[-1] for w in paper.weights] == ["kernel", "bias"]
    np.testing.assert_allclose(np.asarray(paper.bias)[4:], -1.0)


def test_rescale_scales_highway():
    x = _inputs(dim=6)
    a, b = SRU(6, rescale=True, highway_bias=-2.0), SRU(6, highway_bias=-2.0)
    for layer in (a, b):
        layer.build(x.shape)
        layer.kernel.assign(np.zeros(layer.kernel.shape, "float32"))
    # Zero kernel: c stays 0, r = sigmoid(b_r), so h = (1 - r) * alpha * x.
    alpha = np.sqrt(1 + 2 * np.exp(-2.0))
    np.testing.assert_allclose(a(x), alpha * np.asarray(b(x)), atol=1e-6)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"units": 0}, "units"),
        ({"units": -3}, "units"),
        ({"units": 2.5}, "units"),
        ({"units": 4, "dropout": 1.0}, "dropout"),
        ({"units": 4, "recurrent_dropout": -0.1}, "recurrent_dropout"),
        ({"units": 4, "implementation": "cuda"}, "implementation"),
        ({"units": 4, "implementation": "scan"}, "implementation"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=f"Received: {name}="):
        SRU(**kwargs)


def test_bad_input_rank():
    with pytest.raises(ValueError, match="input_shape"):
        SRU(4)(np.zeros((2, 5), "float32"))


def test_config_round_trip_keeps_every_argument():
    layer = SRU(
        7, return_sequences=True, return_state=True, go_backwards=True, state_gates=False,
        dropout=0.1, recurrent_dropout=0.2, highway_bias=-1.0, rescale=True,
        zero_output_for_mask=True, implementation="graph", kernel_regularizer="l2", seed=4,
    )
    clone = assert_config_round_trip(layer)
    for key in ("go_backwards", "state_gates", "rescale", "implementation", "seed"):
        assert getattr(clone, key) == getattr(layer, key)


@pytest.mark.parametrize("units", (6, 4))
def test_layer_anatomy(units, tmp_path):
    x = _inputs(batch=4, steps=5, dim=6)
    expected = 3 if units == 6 else 4
    run_layer_test(
        lambda **kw: SRU(units, return_sequences=True, dropout=0.1, seed=0, **kw),
        x, tmp_path, expected_output_shape=(4, 5, units), expected_weights=expected,
    )


def test_stacked_model_fits_and_round_trips(tmp_path):
    from tests.helpers import run_model_saving_test

    x = _inputs(batch=8, steps=6, dim=5)
    y = np.arange(8) % 3
    model = keras.Sequential(
        [
            keras.Input((None, 5)),
            keras.layers.Masking(0.0),
            SRU(8, return_sequences=True),
            keras.layers.Bidirectional(SRU(8, return_sequences=True)),
            SRU(8, state_gates=False),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", jit_compile=True)
    losses = model.fit(x, y, epochs=5, verbose=0).history["loss"]
    assert losses[-1] < losses[0]
    run_model_saving_test(model, x, tmp_path)
