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
little-endian bytes), so any Keras backend can load it. The header is
checked whole before any tensor is read (`mrrn_keras.text.load_json`'s
limits, byte ranges that tile the data, sizes that fit dtype and shape);
`load_torchvision_resnet` then checks its keys, shapes and dtypes against
the model and reads only the tensors it needs, each by seek and read, and
refuses NaN or infinite values. `torchvision_to_keras`
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
import logging
import math
import os
import pathlib
from collections.abc import Mapping

import numpy as np

from mrrn_keras.download import fetch_file, hub_file_url, sha256_file, verify_file
from mrrn_keras.errors import WeightsError
from mrrn_keras.text import load_json

logger = logging.getLogger(__name__)

IMAGENET_CLASSES = 1000
# torchvision's ResNet-18/34 headers are about 15 kB (the safetensors
# reference implementation allows up to 100 MB, more than this reader needs).
MAX_HEADER_BYTES = 1 << 20
_MAX_RANK = 8
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


@dataclasses.dataclass(frozen=True)
class TensorEntry:
    """One tensor of a safetensors header.

    Attributes:
        dtype: numpy dtype (little-endian).
        shape: tuple of ints.
        begin, end: int. Its byte range in the data (after the header).
    """

    dtype: np.dtype
    shape: tuple[int, ...]
    begin: int
    end: int


def read_safetensors(
    path: str | os.PathLike, keys=None, *, check=None
) -> dict[str, np.ndarray]:
    """Reads tensors of a `.safetensors` file, without torch or pickle.

    The header is checked before any data is read: one JSON object of
    `{name: {dtype, shape, data_offsets}}` (plus an optional
    `__metadata__`) within `mrrn_keras.text.load_json`'s limits and
    `MAX_HEADER_BYTES`, offsets that tile the data exactly, and a byte count
    per tensor that fits its dtype and shape. Only the tensors asked for are
    read; floating-point ones must be finite.

    Args:
        path: str or path. The file.
        keys: iterable of str or None. The tensors to read (each must be in
            the file); None reads all.
        check: callable or None. Called with the checked header `{name:
            TensorEntry}` before any tensor is read (to refuse a file that
            does not fit, by raising).

    Returns:
        `{name: array}` in file order, little-endian, native numpy dtypes.

    Raises:
        WeightsError: the file is missing, truncated or not a safetensors
            file, lacks a key, or holds a NaN or infinite value; one line
            naming it and the first problem (and the key).

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
            _check_layout(entries, total - 8 - header_len)
            if check is not None:
                check(entries)
            wanted = list(entries) if keys is None else list(keys)
            missing = [key for key in wanted if key not in entries]
            if missing:
                raise _Bad(f"it has no tensor `{missing[0]}`")
            tensors = {}
            for key in (k for k in entries if k in set(wanted)):
                entry = entries[key]
                f.seek(8 + header_len + entry.begin)
                value = np.frombuffer(f.read(entry.end - entry.begin), dtype=entry.dtype)
                if value.dtype.kind == "f" and not np.isfinite(value).all():
                    raise _Bad(f"tensor `{key}` holds NaN or infinite values")
                tensors[key] = value.reshape(entry.shape)
    except _Bad as err:
        raise WeightsError(f"{path}: not a safetensors file: {err}") from None
    except WeightsError:  # from `check`; an OSError too
        raise
    except OSError as err:
        raise WeightsError(f"{path}: cannot read it: {err.strerror or err}") from err
    return tensors


class _Bad(Exception):
    """A malformed safetensors file; the message says how."""


def _parse_header(raw: bytes) -> dict[str, TensorEntry]:
    header = load_json(raw, source="its header", error=_Bad)
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
        if not _ints(shape, 0) or len(shape) > _MAX_RANK or not _ints(offsets, 2):
            raise _Bad(f"tensor `{key}` has a malformed shape or data_offsets")
        dtype = np.dtype(_SAFETENSORS_DTYPES[dtype])
        begin, end = offsets
        if end - begin != math.prod(shape) * dtype.itemsize:
            raise _Bad(f"tensor `{key}` holds {end - begin} bytes, not those of shape {shape}")
        entries[key] = TensorEntry(dtype, tuple(shape), begin, end)
    return entries


def _ints(values, length: int) -> bool:
    """A list of non-negative ints (of `length` items, unless 0)."""
    return (
        isinstance(values, list) and (length == 0 or len(values) == length)
        and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values)
    )


def _check_layout(entries: dict[str, TensorEntry], data_len: int) -> None:
    """The tensors' byte ranges must tile [0, data_len) with no gap or overlap."""
    position = 0
    for key, entry in sorted(entries.items(), key=lambda item: (item[1].begin, item[1].end)):
        if entry.begin != position:
            raise _Bad(f"tensor `{key}` starts at byte {entry.begin}, expected {position}")
        position = entry.end
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
    expected, optional = _expected_state(modules, num_classes)
    _check_state(
        {key: (np.shape(value), np.asarray(value).dtype) for key, value in tensors.items()},
        expected, optional, source,
    )
    return _convert(tensors, modules, expected)


def _convert(tensors: Mapping, modules: Mapping, expected: dict) -> dict[str, list[np.ndarray]]:
    """The checked `tensors` as `{keras layer: weights}`; the fc keys are not needed."""
    converted = {layer: [None] * len(shapes) for layer, (_, shapes) in modules.items()}
    for key, (layer, index, _) in expected.items():
        if layer is not None:
            value = np.asarray(tensors[key])
            if value.ndim == 4:
                value = value.transpose(2, 3, 1, 0)  # (out, in, kh, kw) -> (kh, kw, in, out)
            converted[layer][index] = np.ascontiguousarray(value, dtype="float32")
    return converted


def _expected_state(modules: Mapping, num_classes: int) -> tuple[dict, set]:
    """`({state_dict key: (keras layer, index in its weights, torch shape)}, optional keys)`."""
    expected = {}
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
    return expected, optional


def _check_state(specs: Mapping[str, tuple], expected: dict, optional: set, source: str) -> None:
    """Refuses `{key: (shape, dtype)}` unless it holds exactly the expected keys and shapes."""

    def refuse(problem: str):
        raise WeightsError(f"{source} does not hold this torchvision ResNet: {problem}")

    for key, (_, _, shape) in expected.items():
        if key not in specs:
            refuse(f"missing key `{key}`")
        found, dtype = specs[key]
        if tuple(found) != shape:
            refuse(f"key `{key}` has shape {tuple(found)}, expected {shape}")
        if np.dtype(dtype).kind != "f":
            refuse(f"key `{key}` holds {dtype}, expected floating-point values")
    unexpected = sorted(key for key in specs if key not in expected and key not in optional)
    if unexpected:
        refuse(f"unexpected key `{unexpected[0]}`")


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
    expected, optional = _expected_state(shapes, IMAGENET_CLASSES)

    def check(entries: Mapping[str, TensorEntry]) -> None:
        # Keys, shapes and dtypes from the header, before any tensor is read.
        specs = {key: (entry.shape, entry.dtype) for key, entry in entries.items()}
        _check_state(specs, expected, optional, str(path))

    # The fc layer is checked, not loaded: only the backbone's tensors are read.
    keys = [key for key, (layer, _, _) in expected.items() if layer is not None]
    tensors = read_safetensors(path, keys, check=check)
    converted = _convert(tensors, shapes, expected)
    for name, weights in converted.items():
        layers[name].set_weights(weights)
