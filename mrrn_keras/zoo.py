"""The model zoo: variants as data, the registry, and `load_mrrn`.

Every published variant is a folder `zoo/<name>/` holding `config.json`, a
model card `card.md` and, for bundled weights, the `.weights.h5` file. The
name is `architecture.tag` (`mrrn_tiny.motion`, `mrrn_r34.paper`), never
hyperparameters. `config.json`:

    name          str, the folder's name
    architecture  str, the part of the name before the first "."
    description   str, one line
    model         the `MRRN` arguments (`MRRN.get_config()` minus name,
                  trainable, dtype); missing ones take the constructor's
                  defaults, unknown ones are refused
    input         {frames, height, width, sampling, dtype: "uint8", fps (optional)}
    labels        one str per class, or null (then model.num_classes is used)
    dataset       {name, split, recipe, format (optional)} or null
    metrics       [{name, value, split, subset, command}], may be empty
    license       str
    params        int, equal to `MRRN(**model).count_params()`
    weights       null (architecture only), {file, sha256, size} (bundled in
                  the folder) or {url, sha256, size} (fetched into the cache)

`parse_entry` checks all of it and raises `ZooError` naming the file and the
field. The registry is the folders of the installed `zoo/`: the package data
`mrrn_keras/zoo/` of an installed wheel, else `<repo>/zoo` of a checkout or
editable install. (`mrrn_keras.zoo` is this module, so the data folder is
found through the `mrrn_keras` package, not imported as `mrrn_keras.zoo`.)

An entry is also read from a local folder, an http(s)/file URL of a folder,
or a Hugging Face hub repository holding the folder's files,
`hf://owner/repo[@revision]` (`mrrn_keras.hub`; docs/publishing.md). A
remote entry's `name` must equal the URL's last segment; a hub entry's
`name` is free (hub repositories are named by their owners). Remote
config.json files are fetched again on every read while online and read
from the cache offline, except those of a hub commit, which cannot change
and are read from the cache whenever they are there.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import importlib.resources
import json
import logging
import os
import pathlib
import re
import shutil
import tempfile
import types
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Mapping
from typing import TYPE_CHECKING

from mrrn_keras.architecture import BACKBONES, TAP_NAMES, mrrn_parameter_count
from mrrn_keras.data.sampling import SAMPLING_MODES
from mrrn_keras.download import (
    MAX_TEXT_BYTES,
    fetch_file,
    fetch_text,
    is_url,
    sha256_file,
    verify_file,
)
from mrrn_keras.errors import WeightsError, ZooError
from mrrn_keras.files import (
    check_replaceable,
    is_safe_name,
    mark_owned,
    replace_folder,
    scratch_folder,
    write_whole,
)
from mrrn_keras.hub import HubHandle, is_commit, is_hub_handle, parse_handle
from mrrn_keras.text import first_unprintable, load_json, read_text
from mrrn_keras.validation import MIN_IMAGE_SIZE

if TYPE_CHECKING:
    import keras

    from mrrn_keras.model import MRRN, MRRNVideoClassifier

logger = logging.getLogger(__name__)

# Reading entries (`list_variants`, `variant_info`) imports neither Keras nor
# the model, so `mrrn list` and `mrrn info` start at once; loading does.
# tests/test_zoo.py holds these constants to `mrrn_keras.model`.
FUSED_OUTPUT = "probabilities"

ENTRY_FILE = "config.json"
CARD_FILE = "card.md"
# The kind named by the marker of an entry folder `save_entry` writes.
ENTRY_KIND = "zoo entry"
WEIGHTS_SUFFIX = ".weights.h5"
# Metric subsets that mean "the fused output" (the model's own output).
FUSED_SUBSETS = (FUSED_OUTPUT, "fused")
# Every `MRRN` constructor argument (the keys of an entry's `model`) and its
# default (`num_classes` has none).
MODEL_DEFAULTS = {
    "num_classes": None, "backbone": "resnet34", "streams": ("low", "mid", "high"),
    "backbone_width": 1.0, "backbone_weights": None, "backbone_mode": "shared",
    "sru_units": 1024, "sru_layers": 3, "state_gates": False, "sru_dropout": 0.0,
    "time_pooling": "mean", "tap_pooling": "avg", "dropout": 0.5, "fusion": "fixed",
    "fusion_weights": None, "stream_outputs": False, "class_names": None, "image_size": None,
    "implementation": "auto",
}
MODEL_ARGUMENTS = tuple(MODEL_DEFAULTS)
# The `MRRNBackbone` arguments among them; the rest are the heads'.
BACKBONE_ARGUMENTS = (
    "backbone", "streams", "backbone_width", "backbone_weights", "backbone_mode", "sru_units",
    "sru_layers", "state_gates", "sru_dropout", "time_pooling", "tap_pooling", "image_size",
    "implementation",
)
WEIGHTS_FILE = "model.weights.h5"
_SHA256 = re.compile(r"[0-9a-f]{64}")
_NONE = type(None)

# field -> allowed types; `None` in a tuple means null is allowed.
_TOP = {
    "name": str, "architecture": str, "description": str, "model": dict, "input": dict,
    "labels": (list, _NONE), "dataset": (dict, _NONE), "metrics": list, "license": str,
    "params": int, "weights": (dict, _NONE),
}
_INPUT = {"frames": int, "height": int, "width": int, "sampling": str, "dtype": str}
_INPUT_OPTIONAL = {"fps": (int, float, _NONE)}
# A `.keras` file's input spec (`save_model_file`): the entry's, `dtype` optional.
_FILE_INPUT = {k: v for k, v in _INPUT.items() if k != "dtype"}
_FILE_INPUT_OPTIONAL = {"dtype": str, **_INPUT_OPTIONAL}
# The type of every `model` argument (`MRRN` checks the values it takes).
_NUMBER = (int, float)
_MODEL = {
    "num_classes": int, "backbone": str, "streams": list, "backbone_width": _NUMBER,
    "backbone_weights": (str, _NONE), "backbone_mode": str, "sru_units": int, "sru_layers": int,
    "state_gates": bool, "sru_dropout": _NUMBER, "time_pooling": str, "tap_pooling": str,
    "dropout": _NUMBER, "fusion": str, "fusion_weights": (list, _NONE), "stream_outputs": bool,
    "class_names": (list, _NONE), "image_size": (list, _NONE), "implementation": str,
}
# The largest sizes an entry (or a `.keras` file) may build: generous beside
# every real model (the paper's are 1024 units, 3 layers, 101 classes, 12
# frames at 224x224, width 1.0; the Kinetics-700 and ImageNet-21k heads have
# 700 and 21841 classes), finite so that a hostile entry is refused before
# anything is allocated.
MAX_SIZES = {
    "num_classes": 100_000, "sru_units": 8192, "sru_layers": 16, "frames": 1024,
    "image_side": 1024, "backbone_width": 4.0, "params": 1_000_000_000,
}
_DATASET = {"name": str, "split": str, "recipe": str}
_DATASET_OPTIONAL = {"format": str}
_METRIC = {"name": str, "value": (int, float), "split": str, "subset": str, "command": str}
_WEIGHTS = {"sha256": str, "size": int}
_WEIGHTS_OPTIONAL = {"file": str, "url": str}
_TYPE_NAMES = {
    str: "a string", int: "an integer", float: "a number", dict: "an object",
    list: "a list", bool: "a boolean", _NONE: "null",
}


@dataclasses.dataclass(frozen=True)
class WeightsInfo:
    """Where an entry's weights are and how to check them.

    Attributes:
        sha256: str. Hex sha256 of the `.weights.h5` file.
        size: int. Its size in bytes.
        file: str or None. File name inside the entry folder (bundled).
        url: str or None. http(s)/file URL to fetch it from.
    """

    sha256: str
    size: int
    file: str | None = None
    url: str | None = None


@dataclasses.dataclass(frozen=True)
class VariantInfo:
    """A parsed, checked zoo entry (see the module docstring for the fields).

    Attributes:
        name, architecture, description, license, params: as in config.json.
        model: read-only mapping of `MRRN` arguments.
        input: read-only mapping `{frames, height, width, sampling, dtype[, fps]}`.
        labels: tuple of class names, or None.
        dataset: read-only mapping or None.
        metrics: tuple of read-only mappings.
        weights: `WeightsInfo` or None (architecture only).
        location: str. The entry folder, or its URL for a remote entry
            (for a hub entry, `{endpoint}/{owner}/{repo}/resolve/{revision}`).
        handle: `mrrn_keras.hub.HubHandle` or None. For a hub entry, the
            handle it was read through, revision included (`str(handle)`
            is `hf://owner/repo@main`); None otherwise.
        commit: str or None. For a hub entry, the 40-hex commit its files
            are read from: the handle's own for a pinned handle, else the
            one the hub said the branch or tag pointed to when config.json
            was fetched (its `X-Repo-Commit` header; card and weights are
            then read from that commit, so all three come from one
            commit). None when unknown (read offline from the cache, or a
            hub that sends no such header) and for other entries.
    """

    name: str
    architecture: str
    description: str
    model: Mapping
    input: Mapping
    labels: tuple[str, ...] | None
    dataset: Mapping | None
    metrics: tuple[Mapping, ...]
    license: str
    params: int
    weights: WeightsInfo | None
    location: str
    handle: HubHandle | None = None
    commit: str | None = None

    @property
    def num_classes(self) -> int:
        return int(self.model["num_classes"])

    @property
    def is_remote(self) -> bool:
        return is_url(self.location)

    @property
    def weights_source(self) -> str:
        """`"bundled"`, `"url"` or `"none"`."""
        if self.weights is None:
            return "none"
        return "bundled" if self.weights.file else "url"

    def metric(self, name: str = "top1", subset: str | None = None) -> float | None:
        """The value of metric `name` on `subset` (default: the fused output), or None."""
        subsets = FUSED_SUBSETS if subset is None else (subset,)
        for row in self.metrics:
            if row["name"] == name and row["subset"] in subsets:
                return float(row["value"])
        return None

    def model_kwargs(self) -> dict:
        """The `MRRN` arguments as a fresh dict; the entry's labels become `class_names`."""
        kwargs = _thaw(self.model)
        if kwargs["class_names"] is None and self.labels is not None:
            kwargs["class_names"] = list(self.labels)
        return kwargs

    def read_card(self) -> str:
        """The entry's `card.md` text (at most 1 MiB), as written: print it
        through `mrrn_keras.text.printable(..., multiline=True)`.

        Raises:
            ZooError: the entry has no card, or a local one that is too
                large or not UTF-8.
            WeightsError: a remote card could not be fetched.
        """
        if self.is_remote:
            url = f"{self.location}/{CARD_FILE}"
            # At a known commit the card cannot change.
            text = fetch_text(url, reuse_cached=self.commit is not None, missing_ok=True)
            if text is None:
                raise ZooError(f"{url}: the entry has no model card ({CARD_FILE})")
            return text
        path = pathlib.Path(self.location) / CARD_FILE
        if not path.is_file():
            raise ZooError(f"{path}: the entry has no model card ({CARD_FILE})")
        return read_text(path, error=ZooError)


# === Schema ===


def _freeze(value):
    if isinstance(value, dict):
        return types.MappingProxyType({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


def _thaw(value):
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value


def _is_type(value, kinds) -> bool:
    kinds = kinds if isinstance(kinds, tuple) else (kinds,)
    if isinstance(value, bool):
        return bool in kinds
    return isinstance(value, kinds)


class _Checker:
    """Raises `ZooError("<file>: field `<field>` ...")`."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, field: str, message: str):
        raise ZooError(f"{self.source}: field `{field}` {message}")

    def fields(self, obj: dict, prefix: str, required: dict, optional: dict | None = None):
        optional = optional or {}
        for key in required:
            if key not in obj:
                self.fail(f"{prefix}{key}", "is missing")
        for key, value in obj.items():
            kinds = required.get(key, optional.get(key))
            if kinds is None:
                known = ", ".join(sorted({*required, *optional}))
                self.fail(f"{prefix}{key}", f"is not a known field (known: {known})")
            if not _is_type(value, kinds):
                kinds = kinds if isinstance(kinds, tuple) else (kinds,)
                expected = " or ".join(_TYPE_NAMES[k] for k in kinds)
                self.fail(f"{prefix}{key}", f"must be {expected}. Received: {value!r}")


def parse_entry(data, *, source: str, folder_name: str | None, location: str) -> VariantInfo:
    """Checks a config.json document and returns its `VariantInfo`.

    Args:
        data: the decoded JSON.
        source: str. The file, for messages.
        folder_name: str or None. The entry folder's name, which `name`
            must equal.
        location: str. The entry folder or URL, kept in the result.

    Raises:
        ZooError: naming `source` and the offending field.
    """
    check = _Checker(source)
    if not isinstance(data, dict):
        check.fail("(top level)", f"must be a JSON object. Received: {type(data).__name__}")
    check.fields(data, "", _TOP)
    name, architecture = data["name"], data["architecture"]
    if folder_name is not None and name != folder_name:
        check.fail("name", f"must equal the entry folder's name {folder_name!r}. Received: {name!r}")
    tag = name[len(architecture) + 1:] if name.startswith(f"{architecture}.") else ""
    if not architecture or not tag or any(c in name for c in "/\\ ") or first_unprintable(name):
        check.fail(
            "name", f"must be `architecture.tag` with architecture={architecture!r}. Received: {name!r}"
        )
    model = _check_model(check, data["model"])
    _check_input(check, data["input"], model)
    labels = data["labels"]
    if labels is not None:
        _check_names(check, "labels", labels)
        if len(labels) != model["num_classes"]:
            check.fail(
                "labels",
                f"must hold model.num_classes={model['num_classes']} names. Received: {len(labels)}",
            )
        if model["class_names"] is not None and list(model["class_names"]) != labels:
            check.fail("model.class_names", "must be null or equal `labels`")
    if data["dataset"] is not None:
        check.fields(data["dataset"], "dataset.", _DATASET, _DATASET_OPTIONAL)
    for i, row in enumerate(data["metrics"]):
        if not isinstance(row, dict):
            check.fail(f"metrics[{i}]", f"must be an object. Received: {row!r}")
        check.fields(row, f"metrics[{i}].", _METRIC)
    # The arithmetic of the architecture, before anything is built.
    params = mrrn_parameter_count(model)
    if data["params"] != params:
        check.fail(
            "params",
            f"must equal the parameter count of the entry's `model`, {params}. "
            f"Received: {data['params']}",
        )
    weights = _check_weights(check, data["weights"])
    if weights is not None and model["backbone_weights"] is not None:
        check.fail(
            "model.backbone_weights",
            "must be null: the entry's own weights cover the backbone. "
            f"Received: {model['backbone_weights']!r}",
        )
    return VariantInfo(
        name=name,
        architecture=architecture,
        description=data["description"],
        model=_freeze(model),
        input=_freeze(data["input"]),
        labels=None if labels is None else tuple(labels),
        dataset=_freeze(data["dataset"]),
        metrics=_freeze(data["metrics"]),
        license=data["license"],
        params=data["params"],
        weights=weights,
        location=location,
    )


def _check_model(check: _Checker, model: dict, prefix: str = "model.") -> dict:
    """`model` with the defaults filled in, each argument of its type and size."""
    for key in model:
        if key not in MODEL_ARGUMENTS:
            check.fail(f"{prefix}{key}", f"is not an MRRN argument (known: {', '.join(MODEL_ARGUMENTS)})")
    if "num_classes" not in model:
        check.fail(f"{prefix}num_classes", "is missing (it has no default)")
    # A missing argument takes the constructor's default, as in MRRN(**model).
    defaults = {k: _thaw_default(v) for k, v in MODEL_DEFAULTS.items() if k != "num_classes"}
    model = {**defaults, **model}
    check.fields(model, prefix, _MODEL)
    _check_at_most(check, f"{prefix}num_classes", model["num_classes"], 1, "num_classes")
    _check_at_most(check, f"{prefix}sru_units", model["sru_units"], 1, "sru_units")
    _check_at_most(check, f"{prefix}sru_layers", model["sru_layers"], 0, "sru_layers")
    if model["backbone"] not in BACKBONES:
        check.fail(f"{prefix}backbone", f"must be one of {sorted(BACKBONES)}. Received: {model['backbone']!r}")
    streams = model["streams"]
    if not streams or len(set(map(str, streams))) != len(streams) or any(s not in TAP_NAMES for s in streams):
        check.fail(f"{prefix}streams", f"must be distinct taps from {TAP_NAMES}. Received: {streams!r}")
    width, most = model["backbone_width"], MAX_SIZES["backbone_width"]
    if not 0 < width <= most:
        check.fail(f"{prefix}backbone_width", f"must be in (0, {most}]. Received: {width!r}")
    size = model["image_size"]
    if size is not None:
        if len(size) != 2:
            check.fail(f"{prefix}image_size", f"must be null or [height, width]. Received: {size!r}")
        for i, side in enumerate(size):
            _check_side(check, f"{prefix}image_size[{i}]", side)
    if model["class_names"] is not None:
        _check_names(check, f"{prefix}class_names", model["class_names"])
    if model["backbone_weights"] not in (None, "imagenet"):
        check.fail(
            f"{prefix}backbone_weights",
            'must be null or "imagenet" (where an entry without weights starts its backbone). '
            f"Received: {model['backbone_weights']!r}",
        )
    params, most = mrrn_parameter_count(model), MAX_SIZES["params"]
    if params > most:
        check.fail(prefix.rstrip("."), f"builds {params} parameters; at most {most} are allowed")
    return model


def _check_at_most(check: _Checker, field: str, value, least: int, size: str) -> None:
    if not _is_type(value, int) or not least <= value <= MAX_SIZES[size]:
        check.fail(field, f"must be an integer in [{least}, {MAX_SIZES[size]}]. Received: {value!r}")


def _check_side(check: _Checker, field: str, value) -> None:
    most = MAX_SIZES["image_side"]
    if not _is_type(value, int) or not MIN_IMAGE_SIZE <= value <= most:
        check.fail(field, f"must be an integer in [{MIN_IMAGE_SIZE}, {most}]. Received: {value!r}")


def _check_names(check: _Checker, field: str, names: list) -> None:
    """Class names: strings of one printable line each (one line per class in labels.txt)."""
    for i, name in enumerate(names):
        if not isinstance(name, str):
            check.fail(f"{field}[{i}]", f"must be a string. Received: {name!r}")
        bad = first_unprintable(name)
        if bad:
            check.fail(
                f"{field}[{i}]",
                f"must be one line of printable text; it holds the control or line-break "
                f"character {bad}. Received: {name!r}",
            )


def _thaw_default(value):
    # Tuple defaults (`streams`) as JSON would hold them.
    return list(value) if isinstance(value, tuple) else value


def _check_input(check: _Checker, spec: dict, model: dict | None, *, prefix: str = "input.",
                 required: dict = _INPUT, optional: dict = _INPUT_OPTIONAL) -> None:
    check.fields(spec, prefix, required, optional)
    _check_at_most(check, f"{prefix}frames", spec["frames"], 1, "frames")
    for key in ("height", "width"):
        _check_side(check, f"{prefix}{key}", spec[key])
    if spec["sampling"] not in SAMPLING_MODES:
        check.fail(f"{prefix}sampling", f"must be one of {SAMPLING_MODES}. Received: {spec['sampling']!r}")
    if spec.get("dtype", "uint8") != "uint8":
        check.fail(f"{prefix}dtype", f"must be 'uint8'. Received: {spec['dtype']!r}")
    fps = spec.get("fps")
    if fps is not None and not 0 < fps < float("inf"):
        check.fail(f"{prefix}fps", f"must be > 0 or null. Received: {fps!r}")
    size = None if model is None else model["image_size"]
    if size is not None and list(size) != [spec["height"], spec["width"]]:
        check.fail(
            "model.image_size",
            f"must be null or equal [input.height, input.width] = "
            f"{[spec['height'], spec['width']]}. Received: {size!r}",
        )


# The largest weights file an entry may declare: several times the paper-size
# models (ResNet-101 MRRN float32 is about 0.3 GB).
MAX_WEIGHTS_BYTES = 16 << 30


def _check_weights(check: _Checker, weights: dict | None) -> WeightsInfo | None:
    if weights is None:
        return None
    check.fields(weights, "weights.", _WEIGHTS, _WEIGHTS_OPTIONAL)
    if ("file" in weights) == ("url" in weights):
        check.fail("weights", "must have exactly one of `file` (bundled) and `url` (fetched)")
    if not _SHA256.fullmatch(weights["sha256"]):
        check.fail("weights.sha256", f"must be 64 lowercase hex digits. Received: {weights['sha256']!r}")
    if not 0 < weights["size"] <= MAX_WEIGHTS_BYTES:
        check.fail(
            "weights.size",
            f"must be a positive byte count of at most {MAX_WEIGHTS_BYTES} (16 GiB: an entry "
            f"cannot make the package fill a disk). Received: {weights['size']}",
        )
    file = weights.get("file")
    # The name joins the entry's folder or URL, and names the cached copy.
    if file is not None and not (is_safe_name(file) and file.endswith(WEIGHTS_SUFFIX)):
        check.fail(
            "weights.file",
            "must be one plain file name in the entry folder (letters, digits, `._+-`, not "
            f"starting with a dot) ending in {WEIGHTS_SUFFIX}. Received: {file!r}",
        )
    url = weights.get("url")
    if url is not None and not is_url(url):
        check.fail("weights.url", f"must be an http(s) or file URL. Received: {url!r}")
    return WeightsInfo(sha256=weights["sha256"], size=weights["size"], file=file, url=url)


# === Registry ===


def zoo_dir() -> pathlib.Path:
    """The folder of registered entries (installed package data, else `<repo>/zoo`)."""
    installed = importlib.resources.files("mrrn_keras").joinpath("zoo")
    if installed.is_dir():
        return pathlib.Path(str(installed))
    return pathlib.Path(__file__).resolve().parent.parent / "zoo"


def _registry() -> dict[str, pathlib.Path]:
    root = zoo_dir()
    if not root.is_dir():
        return {}
    return {
        p.name: p
        for p in sorted(root.iterdir())
        # Hidden folders are in-progress atomic writes of an entry.
        if not p.name.startswith((".", "_")) and (p / ENTRY_FILE).is_file()
    }


def _natural_key(name: str) -> list:
    """Sorts digits by value: `mrrn_r18` before `mrrn_r101`."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def list_variants(pattern: str | None = None, *, pretrained: bool = False) -> list[str]:
    """Registered variant names in natural order, optionally filtered.

    Args:
        pattern: str or None. An `fnmatch` pattern such as `"mrrn_r*"` or
            `"*.paper"`.
        pretrained: bool. Only entries with weights (bundled or by URL).

    Example:

    >>> list_variants("mrrn_r*.paper")[:3]
    ['mrrn_r18.paper', 'mrrn_r34.paper', 'mrrn_r50.paper']
    """
    names = sorted(_registry(), key=_natural_key)
    if pattern:
        names = fnmatch.filter(names, pattern)
    if pretrained:
        names = [name for name in names if variant_info(name).weights is not None]
    return names


def _unknown(name: str) -> ZooError:
    names = list(_registry())
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
    hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
    return ZooError(
        f"Unknown zoo variant {name!r}.{hint} Registered variants: {', '.join(names) or 'none'}. "
        "A variant may also be an entry folder (with config.json), an http(s)/file URL of one, "
        "or a hub repository holding one (hf://owner/repo[@revision])."
    )


def _read_local(folder: pathlib.Path) -> VariantInfo:
    path = folder / ENTRY_FILE
    if not path.is_file():
        raise ZooError(f"{folder} is not a zoo entry: it has no {ENTRY_FILE}")
    data = load_json(read_text(path, error=ZooError), source=str(path), error=ZooError)
    folder = folder.resolve()
    return parse_entry(data, source=str(path), folder_name=folder.name, location=str(folder))


def _read_remote(url: str, *, hub: HubHandle | None = None) -> VariantInfo:
    """Reads the entry folder at `url`, or the hub repository `hub` (whose base URL `url` is)."""
    url = url.rstrip("/")
    source = f"{url}/{ENTRY_FILE}"
    folder_name = None if hub else _last_segment(url)

    def parse(text: str) -> VariantInfo:
        data = load_json(text, source=source, error=ZooError)
        info = parse_entry(data, source=source, folder_name=folder_name, location=url)
        if hub is not None:
            info = dataclasses.replace(info, handle=hub)
        weights_url = info.weights.url if info.weights else None
        if weights_url and urllib.parse.urlsplit(weights_url).scheme not in ("http", "https"):
            raise ZooError(
                f"{source}: field `weights.url` must be an http(s) URL in a remote entry (a "
                f"remote entry may not read local files). Received: {weights_url!r}"
            )
        return info

    # Checked before the text is cached; a hub commit's files never change.
    headers = {}
    info = fetch_text(
        source, parse=parse, reuse_cached=hub is not None and hub.is_pinned, headers=headers
    )
    if hub is None:
        return info
    if hub.is_pinned:
        return dataclasses.replace(info, commit=hub.revision)
    commit = headers.get("x-repo-commit", "").strip().lower()
    if not is_commit(commit):
        return info  # offline from the cache, or a hub that does not say
    return dataclasses.replace(info, commit=commit, location=hub.at(commit).base_url())


def _last_segment(url: str) -> str:
    """The percent-decoded last segment of a URL's path."""
    return urllib.parse.unquote(urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1])


def variant_info(variant: str | os.PathLike) -> VariantInfo:
    """The checked metadata of a variant.

    Args:
        variant: a registered name, a local entry folder, an http(s)/file
            URL of an entry folder, or `hf://owner/repo[@revision]`, a
            Hugging Face hub repository holding an entry folder's files
            (revision: a branch, tag or 40-hex commit; default `main`).

    Returns:
        The entry's `VariantInfo`.

    Raises:
        ZooError: unknown name (listing the closest ones), malformed hub
            handle (before any request), or malformed entry.
        WeightsError: a remote entry could not be fetched.

    Example:

    >>> info = variant_info("mrrn_r34.paper")
    >>> info.model["backbone"], info.input["frames"], info.weights is None
    ('resnet34', 12, True)
    """
    if isinstance(variant, os.PathLike):
        return _read_local(pathlib.Path(variant))
    if not isinstance(variant, str):
        raise ZooError(
            "`variant` must be a name, an entry folder, a URL or an hf:// handle. "
            f"Received: variant={variant!r}"
        )
    if is_hub_handle(variant):
        hub = parse_handle(variant)
        return _read_remote(hub.base_url(), hub=hub)
    if is_url(variant):
        parts = urllib.parse.urlsplit(variant)
        if parts.scheme == "file":
            return _read_local(pathlib.Path(urllib.request.url2pathname(parts.path)))
        return _read_remote(variant)
    registry = _registry()
    if variant in registry:
        return _read_local(registry[variant])
    if os.path.isdir(variant):
        return _read_local(pathlib.Path(variant))
    raise _unknown(variant)


# === Loading ===


def pretrained_weights_path(info: VariantInfo, *, progress: bool | None = None) -> pathlib.Path:
    """The verified local path of an entry's weights, fetching them if remote.

    Raises:
        ZooError: the entry is architecture-only.
        WeightsError: the file is missing, corrupt, or could not be fetched.
    """
    spec = info.weights
    if spec is None:
        raise ZooError(
            f"{info.name} is architecture-only: it has no pretrained weights. Pass "
            "weights=None for a randomly initialised model, or weights=<path to a "
            ".weights.h5 file>."
        )
    if spec.file and not info.is_remote:
        path = pathlib.Path(info.location) / spec.file
        if not path.is_file():
            raise WeightsError(f"{path} is missing: {info.name}'s {ENTRY_FILE} lists it as its weights")
        problem = verify_file(path, sha256=spec.sha256, size=spec.size)
        if problem:
            raise WeightsError(
                f"{path} does not match {info.name}'s {ENTRY_FILE}: {problem}. The file is "
                "corrupt, or was replaced without updating the entry."
            )
        return path
    url = spec.url or f"{info.location}/{urllib.parse.quote(spec.file)}"
    return fetch_file(
        url, sha256=spec.sha256, size=spec.size, file_name=_cache_file_name(info, url),
        progress=progress,
    )


def _cache_file_name(info: VariantInfo, url: str) -> str:
    """The name of a fetched weights file in the cache: never a path the entry chose.

    The entry's file name or the URL's last segment when it is one plain
    name ending in `.weights.h5` (Keras reads weights only from such
    names), else `<entry name>.weights.h5`, else `model.weights.h5`.
    """
    for name in (info.weights.file, _last_segment(url), f"{info.name}{WEIGHTS_SUFFIX}"):
        if is_safe_name(name) and name.endswith(WEIGHTS_SUFFIX):
            return name
    return f"model{WEIGHTS_SUFFIX}"


def _build(kwargs: dict, info: VariantInfo) -> MRRN:
    from mrrn_keras.model import MRRN

    try:
        return MRRN(**kwargs)
    except (TypeError, ValueError) as err:
        raise ZooError(f"{info.location}: cannot build MRRN from the entry's `model`: {err}") from err


def _load_weights(model, path, info: VariantInfo) -> None:
    from mrrn_keras.legacy import is_legacy_weights, legacy_view

    try:
        # A file written before the backbone/classifier split is read by the old layout.
        target = legacy_view(model) if is_legacy_weights(path) else model
        target.load_weights(str(path))
    except (ValueError, OSError) as err:
        raise WeightsError(f"{path} does not fit {info.name}'s model: {_keras_reason(err)}") from err


def load_model_file(path: str | os.PathLike) -> keras.Model:
    """Loads a whole model saved as `.keras` (by `model.save` or `mrrn finetune`), safely.

    Keras' `safe_mode` stays on: a file that would run code on load (a
    `Lambda` layer's Python function) is refused. A file saved before the
    backbone/classifier split (an `MRRN` of one flat model) loads too, its
    weights read by the old layout (`mrrn_keras.legacy`).

    Args:
        path: str or path. The `.keras` file.

    Before Keras reads it, the archive's `config.json` is decoded under
    `mrrn_keras.text.load_json`'s limits and every MRRN model in it is held
    to the entry schema's sizes (`MAX_SIZES`) and to the weights the archive
    holds (at least one byte per parameter), so a small hostile file cannot
    make Keras allocate a huge model.

    Returns:
        The model.

    Raises:
        WeightsError: the file is missing, not a `.keras` archive, or
            refused; the message names it and gives Keras' reason on one line.
        ZooError: an MRRN model in it is out of bounds (naming the field).
    """
    import keras

    import mrrn_keras.model  # noqa: F401  (registers the MRRN layers with Keras)
    from mrrn_keras.legacy import is_legacy_weights, legacy_view

    path = pathlib.Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such model file; pass a .keras file saved by model.save")
    if not zipfile.is_zipfile(path):
        raise WeightsError(f"{path}: not a .keras model file (a .keras file is a zip archive)")
    try:
        with zipfile.ZipFile(path) as archive:
            config = _checked_model_file_config(path, archive)
    except (OSError, zipfile.BadZipFile) as err:
        raise WeightsError(f"{path}: cannot read the archive: {err}") from err
    try:
        with zipfile.ZipFile(path) as archive, tempfile.TemporaryDirectory() as tmp:
            if WEIGHTS_FILE in archive.namelist():
                weights = archive.extract(WEIGHTS_FILE, tmp)
                if is_legacy_weights(weights):
                    model = keras.saving.deserialize_keras_object(config, safe_mode=True)
                    legacy_view(model).load_weights(weights)
                    return model
        return keras.saving.load_model(path, safe_mode=True)
    # What Keras raises for a malformed or refused archive varies with its content.
    except (ValueError, TypeError, KeyError, OSError, zipfile.BadZipFile) as err:
        raise WeightsError(f"{path}: cannot load the model: {_keras_reason(err)}") from err


MODEL_FILE_INPUT = "mrrn_input.json"  # the input spec, stored inside a `.keras` archive


def save_model_file(model, path: str | os.PathLike, *, input_spec: Mapping) -> pathlib.Path:
    """Saves a whole model as `.keras` with its input spec inside, atomically.

    `load_for_inference` (and so `mrrn predict`, `mrrn export` and `mrrn
    evaluate`) reads the clip length, size and sampling back from the file.

    Args:
        model: a Keras model.
        path: the `.keras` file to write; replaced only once complete.
        input_spec: `{frames, height, width, sampling}`.

    Returns:
        The path written.
    """

    def write(tmp: pathlib.Path) -> None:
        model.save(str(tmp))
        with zipfile.ZipFile(tmp, "a") as archive:
            archive.writestr(MODEL_FILE_INPUT, json.dumps(dict(input_spec)))

    return write_whole(path, write)


def model_file_input(path: str | os.PathLike) -> dict | None:
    """The input spec stored in a `.keras` file by `save_model_file`, checked.

    Returns:
        `{frames, height, width, sampling[, fps]}`, or None for a file
        without one (or not a zip archive: `load_model_file` says why).

    Raises:
        ZooError: the spec is not valid JSON within `load_json`'s limits,
            or a field is missing, of the wrong type or out of bounds
            (naming the file and the field).
    """
    source = f"{path}: {MODEL_FILE_INPUT}"
    try:
        with zipfile.ZipFile(path) as archive:
            if MODEL_FILE_INPUT not in archive.namelist():
                return None
            text = _archive_text(archive, MODEL_FILE_INPUT, source, MAX_TEXT_BYTES)
    except (OSError, zipfile.BadZipFile):
        return None
    spec = load_json(text, source=source, error=ZooError)
    check = _Checker(source)
    if not isinstance(spec, dict):
        check.fail("(top level)", f"must be a JSON object. Received: {type(spec).__name__}")
    _check_input(check, spec, None, prefix="", required=_FILE_INPUT, optional=_FILE_INPUT_OPTIONAL)
    return spec


def _archive_text(archive: zipfile.ZipFile, member: str, source: str, limit: int) -> bytes:
    """A member of a `.keras` archive, refused unread when it unpacks to over `limit` bytes."""
    if archive.getinfo(member).file_size > limit:
        raise ZooError(f"{source} unpacks to more than {limit} bytes; it was not read")
    return archive.read(member)


# The classes whose configs hold MRRN arguments (`MRRN` in files from before the split).
_MRRN_CLASSES = ("MRRN", "MRRNVideoClassifier", "MRRNBackbone")
# A `.keras` file's config.json: an MRRN's is kilobytes; a plain functional
# model's lists every layer (hundreds of kilobytes for a ResNet-152).
MAX_MODEL_CONFIG_BYTES = 16 << 20


def _checked_model_file_config(path: pathlib.Path, archive: zipfile.ZipFile):
    """A `.keras` archive's config.json, decoded and every MRRN in it held to the
    entry schema's bounds; None where it has none (Keras then says so)."""
    if "config.json" not in archive.namelist():
        return None
    source = f"{path}: config.json"
    text = _archive_text(archive, "config.json", source, MAX_MODEL_CONFIG_BYTES)
    config = load_json(text, source=source, error=ZooError)
    weights_bytes = (
        archive.getinfo(WEIGHTS_FILE).file_size if WEIGHTS_FILE in archive.namelist() else 0
    )
    check = _Checker(source)
    for field, arguments in _mrrn_configs(config, "config"):
        # A backbone saved alone has no heads: one class stands for them.
        arguments = {"num_classes": 1, **arguments} if "num_classes" not in arguments else arguments
        model = _check_model(check, arguments, prefix=f"{field}.")
        params = mrrn_parameter_count(model)
        if params > weights_bytes:
            check.fail(
                field, f"declares a model of {params} parameters, but the archive's "
                f"{WEIGHTS_FILE} holds {weights_bytes} bytes",
            )
    return config


def _mrrn_configs(value, field: str):
    """`(field, MRRN arguments)` of every MRRN class's config inside a Keras config."""
    if isinstance(value, list):
        for i, item in enumerate(value):
            yield from _mrrn_configs(item, f"{field}[{i}]")
        return
    if not isinstance(value, dict):
        return
    inner = value.get("config")
    if value.get("class_name") in _MRRN_CLASSES and isinstance(inner, dict):
        arguments = {k: v for k, v in inner.items() if k in MODEL_ARGUMENTS}
        backbone = inner.get("backbone")
        if isinstance(backbone, dict):  # a classifier: its backbone's arguments are its own
            arguments.pop("backbone")
            arguments.update(
                {k: v for k, v in backbone.get("config", {}).items() if k in MODEL_ARGUMENTS}
            )
        yield f"{field}.config", arguments
        return
    for key, item in value.items():
        yield from _mrrn_configs(item, f"{field}.{key}")


def is_model_file(variant) -> bool:
    """Whether `variant` names a `.keras` model file rather than a zoo entry.

    Example:

    >>> is_model_file("run/model.keras"), is_model_file("hf://owner/repo.keras")
    (True, False)
    """
    return str(variant).endswith(".keras") and not is_hub_handle(variant)


def load_for_inference(variant: str | os.PathLike, *, require_spec: bool = True):
    """A model ready to classify clips, with what its inputs must be.

    Args:
        variant: a registered name, entry folder, URL or
            `hf://owner/repo[@revision]` (see `load_mrrn`), or a `.keras`
            file written by `mrrn finetune`.
        require_spec: bool. Refuse a `.keras` file without an input spec;
            False returns None as its spec.

    Returns:
        `(model, input spec {frames, height, width, sampling} or None, name,
        labels or None)`.

    Raises:
        ZooError: an unknown variant, or a `.keras` file that does not
            record its input spec (one saved by plain `model.save`).
        WeightsError: weights or the `.keras` file cannot be read.
    """
    if is_model_file(variant):
        spec = model_file_input(variant)
        model = load_model_file(variant)
        if spec is None and require_spec:
            raise ZooError(
                f"{variant}: the model file does not record its input spec (frames, size, "
                "sampling); use a .keras file written by `mrrn finetune`, or its entry/ folder"
            )
        return model, spec, pathlib.Path(variant).name, getattr(model, "class_names", None)
    info = variant_info(variant)
    check_trained(info)
    return load_mrrn(variant), dict(info.input), info.name, info.labels


def check_trained(info: VariantInfo) -> None:
    """Refuses an architecture-only entry where a model must classify (predict, export).

    Raises:
        ZooError: the entry has no trained weights (even if its backbone
            starts from ImageNet, its heads are untrained).
    """
    if info.weights is None:
        raise ZooError(
            f"{info.name} is architecture-only: its heads are untrained, so it cannot classify. "
            f"Fine-tune it (`mrrn finetune --variant {info.name} ...`) and pass the model.keras "
            "that writes."
        )


def _keras_reason(err: BaseException, limit: int = 600) -> str:
    """Keras' load error on one line: its paragraphs but the list of objects, shortened.

    Keras writes "A total of N objects could not be loaded. Example error
    message for object <...>:", the reason in the next paragraph, then a
    list of objects (and sometimes whole tensors).
    """
    paragraphs = [" ".join(p.split()) for p in str(err).split("\n\n")]
    kept = [p for p in paragraphs if p and not p.startswith("List of objects")]
    reason = " ".join(kept) or type(err).__name__
    return reason if len(reason) <= limit else reason[: limit - 3] + "..."


def load_mrrn(
    variant: str | os.PathLike,
    *,
    weights: str | os.PathLike | None = "pretrained",
    num_classes: int | None = None,
    include_top: bool = True,
    progress: bool | None = None,
    **overrides,
) -> keras.Model:
    """Builds a zoo variant, with its pretrained weights by default.

    `MRRNVideoClassifier.from_preset` and `MRRNBackbone.from_preset` call
    this.

    Args:
        variant: a registered name (`list_variants()`), a local entry folder,
            an http(s)/file URL of an entry folder, or
            `hf://owner/repo[@revision]`, a Hugging Face hub repository
            holding an entry folder's files (`variant_info`); pin a 40-hex
            commit to load the same model every time (docs/publishing.md).
        weights: `"pretrained"` (the entry's weights, fetched and verified;
            for an entry without weights whose `model.backbone_weights` is
            `"imagenet"`, the backbone's ImageNet weights under untrained
            SRUs and heads: the start of a fine-tuning), `None` (random
            initialisation everywhere, the entry's `backbone_weights`
            included, unless passed in `overrides`) or the path of a
            `.weights.h5` file saved from a model built with the same
            arguments (including `num_classes` and `overrides`).
        num_classes: int or None. A number of classes different from the
            entry's keeps the pretrained backbone and builds fresh heads and
            fusion, for fine-tuning; labels then come from `class_names=`
            or are None.
        include_top: bool. `False` returns the `MRRNBackbone`: frames to
            `{stream: time-pooled features}` (the inputs of the heads).
        progress: bool or None. Progress bar for downloads; `None` shows it
            when stderr is a terminal.
        **overrides: other `MRRN` arguments, e.g. `implementation`,
            `dropout`, `stream_outputs`, `class_names`. With pretrained
            weights, backbone arguments may change only where the weights
            still fit (`implementation`, `sru_dropout`, `image_size`, ...).

    Returns:
        An uncompiled `MRRNVideoClassifier`, or its `MRRNBackbone` if
        `include_top=False`.

    Raises:
        ZooError: unknown variant, malformed entry or hub handle,
            architecture-only entry with no ImageNet start and
            `weights="pretrained"`, or overrides the weights cannot fit.
        WeightsError: weights missing, corrupt or not downloadable, or a
            remote entry not fetchable.

    Example:

    >>> model = load_mrrn("mrrn_r18.paper", weights=None, image_size=(32, 32),
    ...                   sru_units=8, sru_layers=1, backbone_width=0.125)
    >>> model.output_shape
    (None, 101)
    """
    info = variant_info(variant)
    if info.handle is not None:
        if info.handle.is_pinned:
            logger.debug("Loading %s, a fixed commit.", info.handle)
        else:
            pin = str(info.handle.at(info.commit)) if info.commit else "hf://owner/repo@<40-hex commit>"
            logger.info(
                "Loading %s%s: a branch or tag can move; pin a commit (%s) to load the same "
                "model every time.", info.handle,
                f" (now at commit {info.commit})" if info.commit else "", pin,
            )
    unknown = sorted(set(overrides) - set(MODEL_ARGUMENTS) - {"name"})
    if unknown:
        raise ZooError(
            f"Unknown MRRN argument(s) {', '.join(unknown)}. Known: {', '.join(MODEL_ARGUMENTS)}"
        )
    base = info.model_kwargs()
    changes = {k: v for k, v in overrides.items() if k == "name" or _thaw_default(v) != base[k]}
    if num_classes is not None and num_classes != base["num_classes"]:
        changes = {"class_names": None, **changes, "num_classes": num_classes}

    if isinstance(weights, str) and weights == "pretrained":
        if info.weights is None and base["backbone_weights"] is not None:
            # An architecture-only entry that names its backbone's start (ImageNet).
            model = _build({**base, **changes}, info)
        else:
            model = _build({**base, **_pick(changes, ("name",))}, info)
            _load_weights(model, pretrained_weights_path(info, progress=progress), info)
            model = _transfer(model, changes, info)
    elif weights is None or isinstance(weights, (str, os.PathLike)):
        model = _build({**base, "backbone_weights": None, **changes}, info)
        if weights is not None:
            path = pathlib.Path(weights)
            if not path.is_file():
                raise WeightsError(f"Weights file {path} not found")
            _load_weights(model, path, info)
    else:
        raise ZooError(
            '`weights` must be "pretrained", None or a path to a .weights.h5 file. '
            f"Received: weights={weights!r}"
        )
    # Frames of another size run (the network is fully convolutional) but are
    # warned about: see `mrrn_keras.predict.warn_if_untrained_size`.
    model.trained_size = (int(info.input["height"]), int(info.input["width"]))
    return model if include_top else model.backbone


def _pick(mapping: dict, keys) -> dict:
    return {k: v for k, v in mapping.items() if k in keys}


def _transfer(model: MRRN, changes: dict, info: VariantInfo) -> MRRNVideoClassifier:
    """The pretrained `model` with `changes`: its backbone (or a copy with other
    arguments and the same weights) under heads that keep their weights unless
    the classes change."""
    from mrrn_keras.model import MRRNBackbone

    backbone_changes = _pick(changes, BACKBONE_ARGUMENTS)
    head_changes = {k: v for k, v in changes.items() if k not in BACKBONE_ARGUMENTS}
    head_changes.pop("name", None)
    if not backbone_changes and not head_changes:
        return model
    backbone = model.backbone
    try:
        if backbone_changes:
            config = {**backbone.get_config(), **backbone_changes}
            backbone = MRRNBackbone.from_config(config)
            backbone.set_weights(model.backbone.get_weights())
        return model.with_heads(backbone=backbone, **head_changes)
    except ValueError as err:
        raise ZooError(
            f"{info.name}'s pretrained weights do not fit the model with {changes}: {err}. "
            "Pass weights=None to build that model untrained."
        ) from err


# === Writing ===


def save_entry(
    model: MRRNVideoClassifier,
    folder: str | os.PathLike,
    *,
    input_spec: Mapping,
    description: str,
    card: str,
    dataset: Mapping | None = None,
    metrics=(),
    license: str = "Apache-2.0",
) -> VariantInfo:
    """Writes `model` as a zoo entry folder, replacing the folder in one step.

    The folder (named `architecture.tag`) gets `config.json` (the model's
    arguments, input spec, labels, metrics and `weights: {file, sha256,
    size}`), `card.md` and `model.weights.h5`; the entry is written beside
    it under a hidden name, checked by the same parser `load_mrrn` uses,
    and only then moved into place (`mrrn_keras.files.replace_folder`), so
    a reader sees the old entry or the new one, never half of one. The
    folder carries the package's marker (`mrrn_keras.files.OWNED_MARKER`);
    an existing folder is replaced only if it is an entry the package wrote. The
    folder is everything a load needs: from disk (`load_mrrn(folder)`),
    served over http(s), or with its three files uploaded to the root of a
    Hugging Face hub repository (`load_mrrn("hf://owner/repo@<commit>")`,
    docs/publishing.md), where the weights are checked against the sha256
    and size in config.json.

    Args:
        model: an `MRRNVideoClassifier`; its `class_names` become the labels.
        folder: str or path. The entry folder; its name is the entry's name.
        input_spec: mapping `{frames, height, width, sampling[, fps]}`.
        description: str. One line.
        card: str. The model card's markdown.
        dataset: mapping `{name, split, recipe[, format]}` or None.
        metrics: sequence of `{name, value, split, subset, command}`.
        license: str. Defaults to `"Apache-2.0"`.

    Returns:
        The written entry's `VariantInfo`.

    Raises:
        ZooError: the entry would not be valid (naming the field); nothing
            is written then.
        ValueError: `model` is not an `MRRNVideoClassifier`.
        ExistingPathError: `folder` exists and is not an entry the package
            wrote (no marker, a file or a symbolic link); nothing is written.
        OSError: the folder's parent cannot be written.

    Example:

    >>> import tempfile, pathlib
    >>> from mrrn_keras import MRRN
    >>> model = MRRN(2, backbone="resnet18", backbone_width=0.125, sru_units=8,
    ...              sru_layers=1, class_names=["a", "b"])
    >>> folder = pathlib.Path(tempfile.mkdtemp()) / "mrrn_tiny.demo"
    >>> info = save_entry(model, folder, description="A demo.", card="# Demo",
    ...                   input_spec={"frames": 4, "height": 32, "width": 32,
    ...                               "sampling": "segments"})
    >>> info.name, info.labels, load_mrrn(folder).count_params() == info.params
    ('mrrn_tiny.demo', ('a', 'b'), True)
    >>> sorted(p.name for p in folder.iterdir()), info.weights.file, len(info.weights.sha256)
    (['.mrrn-owned', 'card.md', 'config.json', 'model.weights.h5'], 'model.weights.h5', 64)
    """
    from mrrn_keras.model import MRRNVideoClassifier

    if not isinstance(model, MRRNVideoClassifier):
        raise ValueError(
            f"`model` must be an MRRNVideoClassifier. Received: model of type {type(model).__name__}"
        )
    folder = pathlib.Path(folder)
    check_replaceable(folder, ENTRY_KIND, overwrite=True)
    folder.parent.mkdir(parents=True, exist_ok=True)
    scratch = scratch_folder(folder.parent, f".{folder.name}.tmp")
    entry = scratch / "entry"
    entry.mkdir()
    mark_owned(entry, ENTRY_KIND)
    try:
        weights = entry / WEIGHTS_FILE
        model.save_weights(str(weights))
        data = {
            "name": folder.name,
            "architecture": folder.name.split(".")[0],
            "description": description,
            "model": model.mrrn_arguments(),
            "input": {"dtype": "uint8", **input_spec},
            "labels": None if model.class_names is None else list(model.class_names),
            "dataset": None if dataset is None else dict(dataset),
            "metrics": [dict(row) for row in metrics],
            "license": license,
            "params": int(model.count_params()),
            "weights": {
                "file": weights.name, "sha256": sha256_file(weights), "size": weights.stat().st_size,
            },
        }
        parse_entry(data, source=str(folder / ENTRY_FILE), folder_name=folder.name,
                    location=str(folder))
        (entry / ENTRY_FILE).write_text(json.dumps(data, indent=2) + "\n")
        (entry / CARD_FILE).write_text(card.rstrip() + "\n")
        check_replaceable(folder, ENTRY_KIND, overwrite=True)  # one may have appeared meanwhile
        replace_folder(entry, folder, overwrite=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return _read_local(folder)
