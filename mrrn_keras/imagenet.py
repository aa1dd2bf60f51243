"""torchvision's ImageNet weights for resnet18/34: where they are, how they are read and converted.

torchvision's ImageNet ResNet-18/34 weights are published by timm on the
Hugging Face hub as `model.safetensors` (`timm/resnet18.tv_in1k`,
`timm/resnet34.tv_in1k`), with torchvision's `state_dict` names
(`conv1.weight`, `bn1.running_mean`, `layer1.0.conv1.weight`,
`layer2.0.downsample.0.weight`, `fc.weight`, ...). `IMAGENET_WEIGHTS` pins
each to one commit, its sha256 and a size bound; `imagenet_weights_path`
fetches it through the verified cache of `mrrn_keras.download` (under
`$HF_ENDPOINT`, offline mode honoured).

A file is read here without torch and without pickle (`read_safetensors`:
the safetensors format is an 8-byte header length, a JSON header, raw
little-endian bytes), so any Keras backend can load it. `torchvision_to_keras`
checks every key and shape against the model it is meant for, then turns
convolution kernels from torch's (out, in, kh, kw) into Keras'
(kh, kw, in, out) and BatchNorm's weight/bias/running_mean/running_var into
gamma/beta/moving_mean/moving_variance; `mrrn_keras.backbones` builds the
layers and tells which torchvision module each one is.

Where no sha256 is pinned (resnet34: not found published), nothing is
downloaded: the file is taken from the path in `$MRRN_IMAGENET_RESNET34`
(see `imagenet_env_var`), which the user vouches for; its sha256 is logged.
A path set for a backbone that has a pinned sha256 must match it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import pathlib
from collections.abc import Mapping

import numpy as np

from mrrn_keras.download import fetch_file, hub_file_url, sha256_file, verify_file
from mrrn_keras.errors import WeightsError

logger = logging.getLogger(__name__)

IMAGENET_CLASSES = 1000
# The safetensors reference implementation refuses larger headers too.
MAX_HEADER_BYTES = 100_000_000
_SAFETENSORS_DTYPES = {
    "F16": "<f2", "F32": "<f4", "F64": "<f8", "I8": "i1", "I16": "<i2", "I32": "<i4",
    "I64": "<i8", "U8": "u1", "U16": "<u2", "U32": "<u4", "U64": "<u8", "BOOL": "?",
}
_BN_PARAMETERS = ("weight", "bias", "running_mean", "running_var")  # = Keras' BN weight order
_BN_COUNTER = "num_batches_tracked"  # a training counter torch keeps; not a weight


@dataclasses.dataclass(frozen=True)
class ImagenetWeights:
    """Where one backbone's ImageNet weights are published and how they are checked.

    Attributes:
        repo: str. Hugging Face hub repository, `"owner/name"`.
        revision: str. The commit the file is read at (immutable).
        file: str. The file's path in the repository.
        sha256: str or None. The file's published sha256; None where it is
            not known here (then nothing is downloaded, see the module
            docstring).
        max_size: int. Most bytes the file may have: the hub shows sizes
            rounded to 0.1 MB, so the exact size is not published and is
            checked as an upper bound (the sha256 pins the content).
        cache_name: str. The file's name in the cache.
    """

    repo: str
    revision: str
    file: str
    sha256: str | None
    max_size: int
    cache_name: str

    @property
    def url(self) -> str:
        """The download URL under the current `$HF_ENDPOINT`."""
        return hub_file_url(self.repo, self.revision, self.file)


IMAGENET_WEIGHTS: dict[str, ImagenetWeights] = {
    # https://huggingface.co/timm/resnet18.tv_in1k/blob/main/model.safetensors: added by commit
    # a987fd6 ("Add model"), SHA256 694f673d..., "46.8 MB" (SI or binary megabytes: under 47 MiB).
    "resnet18": ImagenetWeights(
        repo="timm/resnet18.tv_in1k",
        revision="a987fd6b60f845221bfff84b6f0191273ba56ead",
        file="model.safetensors",
        sha256="694f673df6520a3158624e8a89af086f59923ee4cd7436fe5bc3bc71d295ad81",
        max_size=47 << 20,
        cache_name="resnet18.tv_in1k.safetensors",
    ),
    # https://huggingface.co/timm/resnet34.tv_in1k/commit/c983eba7f5e69bc3548a626d1b0b0b914e5de3a6
    # changes README.md only; its parent 9942aa7 ("Add model") added model.safetensors, "87.3 MB"
    # (under 88 MiB). Its sha256 was not found published, so it is not downloaded.
    "resnet34": ImagenetWeights(
        repo="timm/resnet34.tv_in1k",
        revision="c983eba7f5e69bc3548a626d1b0b0b914e5de3a6",
        file="model.safetensors",
        sha256=None,
        max_size=88 << 20,
        cache_name="resnet34.tv_in1k.safetensors",
    ),
}


def imagenet_env_var(name: str) -> str:
    """The variable naming a local ImageNet weights file for backbone `name`.

    >>> imagenet_env_var("resnet34")
    'MRRN_IMAGENET_RESNET34'
    """
    return f"MRRN_IMAGENET_{name.upper()}"


def imagenet_weights_path(name: str, *, progress: bool | None = None) -> pathlib.Path:
    """The verified local path of backbone `name`'s ImageNet weights, fetched if needed.

    A path in `$MRRN_IMAGENET_<NAME>` is used as is where no sha256 is
    pinned (the user vouches for it; its sha256 is logged) and must match
    the pinned sha256 otherwise. Without one, the pinned file is fetched into
    the cache (`mrrn_keras.download.fetch_file`: lock, size bound, sha256,
    `MRRN_OFFLINE`).

    Args:
        name: str. A key of `IMAGENET_WEIGHTS`.
        progress: bool or None. Progress bar for the download; None shows
            one when stderr is a terminal.

    Returns:
        The path of the `.safetensors` file.

    Raises:
        WeightsError: unknown name; the variable names a missing or wrong
            file; no sha256 is pinned and the variable is unset; or the
            download failed (see `fetch_file`).
    """
    if name not in IMAGENET_WEIGHTS:
        raise WeightsError(
            f"No torchvision ImageNet weights are registered for {name!r}; "
            f"registered: {sorted(IMAGENET_WEIGHTS)}"
        )
    spec = IMAGENET_WEIGHTS[name]
    variable = imagenet_env_var(name)
    local = os.environ.get(variable, "").strip()
    if local:
        path = pathlib.Path(local).expanduser()
        if not path.is_file():
            raise WeightsError(f"{variable}={local!r}: no such file (it should be {spec.url})")
        if spec.sha256 is None:
            logger.warning(
                "Using %s (sha256 %s) as %s's ImageNet weights from %s: no sha256 is pinned for "
                "that file, so it is trusted as given.", path, sha256_file(path), name, variable,
            )
            return path
        problem = verify_file(path, sha256=spec.sha256, max_size=spec.max_size)
        if problem:
            raise WeightsError(f"{path} (from {variable}) is not {spec.url}: {problem}")
        return path
    if spec.sha256 is None:
        raise WeightsError(
            f"No sha256 is pinned for {name}'s ImageNet weights ({spec.repo}), so they are not "
            f"downloaded: fetch {spec.url}, check it, and set {variable} to its path (or pass "
            "weights=<path of the .safetensors file>)"
        )
    return fetch_file(
        spec.url, sha256=spec.sha256, size=None, max_size=spec.max_size,
        file_name=spec.cache_name, progress=progress,
    )


def read_safetensors(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Reads every tensor of a `.safetensors` file, without torch or pickle.

    The header is checked before any data is read: one JSON object of
    `{name: {dtype, shape, data_offsets}}` (plus an optional
    `__metadata__`), offsets that tile the data exactly, and a byte count
    per tensor that fits its dtype and shape.

    Args:
        path: str or path. The file.

    Returns:
        `{name: array}` in file order, little-endian, native numpy dtypes.

    Raises:
        WeightsError: the file is missing, truncated or not a safetensors
            file; one line naming it and the first problem.

    Example:

    >>> import tempfile
    >>> blob = b'{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}'
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "w.safetensors"
    >>> _ = path.write_bytes(len(blob).to_bytes(8, "little") + blob
    ...                      + np.array([1, 2], "<f4").tobytes())
    >>> read_safetensors(path)["w"]
    array([1., 2.], dtype=float32)
    """
    path = pathlib.Path(path)
    try:
        with open(path, "rb") as f:
            total = os.fstat(f.fileno()).st_size
            prefix = f.read(8)
            if len(prefix) < 8:
                raise _Bad("shorter than the 8-byte header length")
            header_len = int.from_bytes(prefix, "little")
            if header_len > min(MAX_HEADER_BYTES, total - 8):
                raise _Bad(f"header length {header_len} exceeds the file or {MAX_HEADER_BYTES} bytes")
            entries = _parse_header(f.read(header_len))
            data_len = total - 8 - header_len
            _check_layout(entries, data_len)
            tensors = {}
            for key, (dtype, shape, begin, end) in entries.items():
                f.seek(8 + header_len + begin)
                tensors[key] = np.frombuffer(f.read(end - begin), dtype=dtype).reshape(shape)
    except _Bad as err:
        raise WeightsError(f"{path}: not a safetensors file: {err}") from None
    except OSError as err:
        raise WeightsError(f"{path}: cannot read it: {err.strerror or err}") from err
    return tensors


class _Bad(Exception):
    """A malformed safetensors file; the message says how."""


def _parse_header(raw: bytes) -> dict[str, tuple]:
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise _Bad(f"its header is not JSON ({err})") from None
    if not isinstance(header, dict):
        raise _Bad("its header is not a JSON object")
    entries = {}
    for key, entry in header.items():
        if key == "__metadata__":
            continue
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
            raise _Bad(f"tensor `{key}` is not {{dtype, shape, data_offsets}}")
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if dtype not in _SAFETENSORS_DTYPES:
            raise _Bad(f"tensor `{key}` has dtype {dtype!r}; readable: {sorted(_SAFETENSORS_DTYPES)}")
        if not _ints(shape, 0) or not _ints(offsets, 2):
            raise _Bad(f"tensor `{key}` has a malformed shape or data_offsets")
        dtype = np.dtype(_SAFETENSORS_DTYPES[dtype])
        begin, end = offsets
        if end - begin != math.prod(shape) * dtype.itemsize:
            raise _Bad(f"tensor `{key}` holds {end - begin} bytes, not those of shape {shape}")
        entries[key] = (dtype, tuple(shape), begin, end)
    return entries


def _ints(values, length: int) -> bool:
    """A list of non-negative ints (of `length` items, unless 0)."""
    return (
        isinstance(values, list) and (length == 0 or len(values) == length)
        and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values)
    )


def _check_layout(entries: dict, data_len: int) -> None:
    """The tensors' byte ranges must tile [0, data_len) with no gap or overlap."""
    position = 0
    for key, (_, _, begin, end) in sorted(entries.items(), key=lambda item: item[1][2:]):
        if begin != position:
            raise _Bad(f"tensor `{key}` starts at byte {begin}, expected {position}")
        position = end
    if position != data_len:
        raise _Bad(f"the tensors hold {position} bytes but the data has {data_len}")


def torchvision_to_keras(
    tensors: Mapping[str, np.ndarray],
    modules: Mapping[str, tuple[str, list[tuple[int, ...]]]],
    *,
    source: str,
    num_classes: int = IMAGENET_CLASSES,
) -> dict[str, list[np.ndarray]]:
    """Checks a torchvision ResNet `state_dict` against a model and converts it.

    The file must hold exactly the modules of the model (a convolution's
    `weight`; a BatchNorm's `weight`, `bias`, `running_mean`,
    `running_var`, and optionally `num_batches_tracked`), plus the
    classifier `fc.weight` `(num_classes, channels)` and `fc.bias`, with
    floating-point values of the matching shapes.

    Args:
        tensors: `{state_dict key: array}`, e.g. from `read_safetensors`.
        modules: `{keras layer name: (torchvision module name, keras weight
            shapes)}`: one kernel `(kh, kw, in, out)` for a convolution, four
            vectors for a BatchNorm. The last layer's channels size `fc`.
        source: str. The file, for messages.
        num_classes: int. Rows of `fc.weight`. Defaults to 1000.

    Returns:
        `{keras layer name: weights}` in Keras order, float32.

    Raises:
        WeightsError: one line naming `source` and the first missing,
            unexpected or misshapen key.

    Example:

    >>> tensors = {"conv1.weight": np.ones((4, 3, 1, 1)), "fc.weight": np.ones((2, 4)),
    ...            "fc.bias": np.zeros(2)}
    >>> out = torchvision_to_keras(tensors, {"conv1_conv": ("conv1", [(1, 1, 3, 4)])},
    ...                            source="x.safetensors", num_classes=2)
    >>> out["conv1_conv"][0].shape
    (1, 1, 3, 4)
    """
    expected = {}  # state_dict key -> (keras layer, index in its weights, torch shape)
    channels = None
    for layer, (module, shapes) in modules.items():
        if len(shapes) == 1:  # Conv2D kernel (kh, kw, in, out) <- torch (out, in, kh, kw)
            kh, kw, cin, cout = shapes[0]
            expected[f"{module}.weight"] = (layer, 0, (cout, cin, kh, kw))
            channels = cout
        else:  # BatchNormalization gamma, beta, moving_mean, moving_variance
            for i, (parameter, shape) in enumerate(zip(_BN_PARAMETERS, shapes)):
                expected[f"{module}.{parameter}"] = (layer, i, tuple(shape))
    expected["fc.weight"] = (None, 0, (num_classes, channels))
    expected["fc.bias"] = (None, 1, (num_classes,))
    optional = {f"{module}.{_BN_COUNTER}" for module, shapes in modules.values() if len(shapes) == 4}

    def refuse(problem: str):
        raise WeightsError(f"{source} does not hold this torchvision ResNet: {problem}")

    converted = {layer: [None] * len(shapes) for layer, (_, shapes) in modules.items()}
    for key, (layer, index, shape) in expected.items():
        if key not in tensors:
            refuse(f"missing key `{key}`")
        value = np.asarray(tensors[key])
        if value.shape != shape:
            refuse(f"key `{key}` has shape {value.shape}, expected {shape}")
        if value.dtype.kind != "f":
            refuse(f"key `{key}` holds {value.dtype}, expected floating-point values")
        if layer is not None:
            if value.ndim == 4:
                value = value.transpose(2, 3, 1, 0)  # (out, in, kh, kw) -> (kh, kw, in, out)
            converted[layer][index] = np.ascontiguousarray(value, dtype="float32")
    unexpected = sorted(key for key in tensors if key not in expected and key not in optional)
    if unexpected:
        refuse(f"unexpected key `{unexpected[0]}`")
    return converted


def load_torchvision_resnet(model, path: str | os.PathLike, modules: Mapping[str, str]) -> None:
    """Loads a torchvision ResNet `.safetensors` file into a Keras model, checked.

    Args:
        model: a Keras model holding every layer named in `modules` (the
            whole network, so that the whole file is checked).
        path: str or path. The `.safetensors` file.
        modules: `{keras layer name: torchvision module name}` for every
            convolution and BatchNorm, in network order (the last one's
            channels are the classifier's input).

    Raises:
        WeightsError: the file is unreadable or does not fit (one line
            naming it and the first bad key).
    """
    layers = {name: model.get_layer(name) for name in modules}
    shapes = {
        name: (modules[name], [tuple(w.shape) for w in layer.weights])
        for name, layer in layers.items()
    }
    converted = torchvision_to_keras(read_safetensors(path), shapes, source=str(path))
    for name, weights in converted.items():
        layers[name].set_weights(weights)
