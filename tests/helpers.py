"""Shared test helpers: the checks every layer and the whole MRRN go through."""

import json
import os

import keras
import numpy as np


BACKEND = keras.backend.backend()


def layer_gradients(layer, objective, inputs):
    """Gradients of a scalar objective w.r.t. `inputs`, then the layer's trainable weights.

    `objective(call, *inputs)` computes the scalar with `call(*args, **kwargs)`
    in place of `layer(...)`; on JAX the call is `stateless_call` so that
    `jax.grad` sees the weights. Works on the TensorFlow and JAX backends.
    """
    inputs = [np.asarray(x, "float32") for x in inputs]
    if BACKEND == "tensorflow":
        import tensorflow as tf

        inputs = [tf.constant(x) for x in inputs]
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            value = objective(layer, *inputs)
        grads = tape.gradient(value, inputs + layer.trainable_weights)
    elif BACKEND == "jax":
        import jax

        frozen = [v.value for v in layer.non_trainable_variables]

        def fn(inputs, trainable):
            def call(*args, **kwargs):
                return layer.stateless_call(trainable, frozen, *args, **kwargs)[0]

            return objective(call, *inputs)

        trainable = [v.value for v in layer.trainable_variables]
        d_inputs, d_weights = jax.grad(fn, argnums=(0, 1))(inputs, trainable)
        grads = list(d_inputs) + list(d_weights)
    else:
        raise NotImplementedError(f"no gradient helper for backend {BACKEND!r}")
    return [np.asarray(g) for g in grads]


def assert_config_round_trip(layer):
    """`from_config(get_config())` gives the same config (sorted JSON)."""
    config = layer.get_config()
    clone = layer.__class__.from_config(config)
    assert json.dumps(clone.get_config(), sort_keys=True, default=str) == json.dumps(
        config, sort_keys=True, default=str
    )
    return clone


def run_model_saving_test(model, inputs, tmp_path, atol=1e-6):
    """`.keras` save -> `load_model` (safe mode) -> same outputs."""
    expected = keras.tree.map_structure(np.asarray, model(inputs, training=False))
    path = os.path.join(str(tmp_path), "model.keras")
    model.save(path)
    restored = keras.saving.load_model(path, safe_mode=True)
    got = keras.tree.map_structure(np.asarray, restored(inputs, training=False))
    keras.tree.map_structure(
        lambda a, b: np.testing.assert_allclose(a, b, atol=atol, rtol=0), expected, got
    )
    return restored


def run_layer_test(
    layer_factory,
    inputs,
    tmp_path,
    *,
    expected_output_shape,
    expected_weights,
    expected_dtype="float32",
    targets=None,
):
    """The checks every layer goes through (as keras-hub's `run_layer_test`).

    Config round trip; symbolic and eager calls with `expected_output_shape`
    and `expected_dtype`; `expected_weights` weights; when the layer has
    trainable weights, one `fit` step under `jit_compile=True` that changes
    them; a `.keras` round trip of a model around the layer (same outputs);
    and a mixed-precision build (float32 variables, finite outputs in the
    layer's compute dtype).

    Args:
        layer_factory: `(**kwargs) -> layer`; kwargs carry `dtype` for the
            mixed-precision check.
        inputs: an array, or a list of arrays for a layer taking several.
        expected_output_shape: the eager output's shape.
        expected_weights: number of weights once built.
        expected_dtype: dtype of the output at the default policy.
        targets: fit targets; zeros like the output by default.
    """
    layer = layer_factory()
    assert_config_round_trip(layer)
    several = isinstance(inputs, (list, tuple))
    arrays = list(inputs) if several else [inputs]

    symbolic_in = [keras.Input(shape=x.shape[1:], dtype=str(x.dtype)) for x in arrays]
    symbolic_out = layer(symbolic_in if several else symbolic_in[0])
    assert len(layer.weights) == expected_weights
    assert tuple(symbolic_out.shape[1:]) == tuple(expected_output_shape[1:])
    model = keras.Model(symbolic_in, symbolic_out)
    eager_out = model(arrays if several else arrays[0])
    assert tuple(eager_out.shape) == tuple(expected_output_shape)
    assert keras.backend.standardize_dtype(eager_out.dtype) == expected_dtype

    if layer.trainable_weights:
        before = [np.asarray(w) for w in layer.trainable_weights]
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse", jit_compile=True)
        if targets is None:
            targets = np.zeros(expected_output_shape, "float32")
        model.fit(arrays if several else arrays[0], targets, epochs=1,
                  batch_size=len(arrays[0]), verbose=0)
        after = [np.asarray(w) for w in layer.trainable_weights]
        assert any(not np.allclose(a, b) for a, b in zip(before, after)), "a fit step changed nothing"

    run_model_saving_test(model, arrays if several else arrays[0], tmp_path)

    mixed = layer_factory(dtype="mixed_float16")
    out = mixed(arrays if several else arrays[0])
    assert all(keras.backend.standardize_dtype(w.dtype) == "float32" for w in mixed.weights)
    assert keras.backend.standardize_dtype(out.dtype) == mixed.compute_dtype
    assert np.isfinite(np.asarray(keras.ops.cast(out, "float32"))).all()


def assert_top1_matches_confusion(metrics):
    """`top1` is the share of videos on the confusion matrix's diagonal."""
    confusion = np.asarray(metrics["confusion_matrix"])
    assert confusion.sum() == metrics["videos"] > 0
    np.testing.assert_allclose(metrics["top1"], np.trace(confusion) / confusion.sum(), atol=1e-4)


def indexed_frames(num_frames, height=32, width=40):
    """Frame t is uniformly `16 + 8 * t` (t < 30): the frame index survives mpeg4."""
    values = (16 + 8 * np.arange(num_frames)).astype(np.uint8)
    return np.broadcast_to(values[:, None, None, None], (num_frames, height, width, 3)).copy()


def frame_numbers(clip):
    """Inverse of `indexed_frames`: the source frame index of each frame of a clip."""
    means = np.asarray(clip, np.float64).reshape(len(clip), -1).mean(-1)
    return np.round((means - 16) / 8).astype(int).tolist()


def write_class_videos(root, counts, *, num_frames=8, height=32, width=40, ext=".avi"):
    """Writes `root/<class>/<class>_<i><ext>` (mpeg4) for `{class: count}`; returns the paths."""
    from mrrn_keras.data.video import write_video

    paths = []
    for name, count in counts.items():
        folder = os.path.join(str(root), name)
        os.makedirs(folder, exist_ok=True)
        for i in range(count):
            path = os.path.join(folder, f"{name}_{i}{ext}")
            write_video(path, indexed_frames(num_frames + i, height, width), fps=8)
            paths.append(path)
    return paths


_NO_TENSORFLOW = (
    "import sys\n"
    "class _NoTensorFlow:\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name.split('.')[0] == 'tensorflow':\n"
    "            raise ModuleNotFoundError(name)\n"
    "sys.meta_path.insert(0, _NoTensorFlow())\n"
)


def no_tensorflow_env(tmp_path, **extra):
    """Environment of a JAX-backend Python process in which `import tensorflow` fails.

    As on the GPU machine, which has no TensorFlow: a `sitecustomize` in
    `tmp_path/no_tensorflow` blocks the import, and the repository comes
    first on the path.
    """
    import pathlib

    folder = pathlib.Path(tmp_path) / "no_tensorflow"
    folder.mkdir(exist_ok=True)
    (folder / "sitecustomize.py").write_text(_NO_TENSORFLOW)
    root = pathlib.Path(__file__).resolve().parents[1]
    return {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu",
            "TF_CPP_MIN_LOG_LEVEL": "3",
            "PYTHONPATH": os.pathsep.join([str(folder), str(root)]), **extra}
