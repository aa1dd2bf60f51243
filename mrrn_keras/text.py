"""Text from outside the package: shown safely, checked, decoded under limits.

An entry's description, labels and card, a file name or a video's metadata
may hold terminal control sequences (ESC, CSI, OSC: clear the screen, set
the window title, hide or recolour text), line breaks that split one record
into two (a label in `labels.txt`) or bidirectional overrides that show text
in another order than it is stored. `printable` makes every such character
visible as an escape (`\\x1b`, `\\u202e`) before text is printed;
`first_unprintable` finds one, so names that must stay one plain line
(labels) can be refused.

JSON from outside (an entry's config.json, a `.keras` file's
`mrrn_input.json`, a safetensors header) is decoded by `load_json`: nesting
at most `MAX_JSON_DEPTH` deep (Python's decoder recurses, so deeper input
would end in a RecursionError), integers of at most `MAX_JSON_DIGITS` digits
(Python refuses to convert more than 4300 at all, with a bare ValueError),
no NaN or infinity. `read_text` reads a local text file under the same
1 MiB cap as remote text (`mrrn_keras.download.MAX_TEXT_BYTES`). Each raises
the exception type its caller names, with one line naming the source.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import re
import unicodedata

from mrrn_keras.download import MAX_TEXT_BYTES

MAX_JSON_DEPTH = 64
MAX_JSON_DIGITS = 32
# Control (Cc: C0, DEL, C1), format (Cf: bidi overrides, zero-width joiners),
# line and paragraph separators, and lone surrogates (undecodable bytes of a
# file name, read with `surrogateescape`).
_UNPRINTABLE = frozenset(("Cc", "Cf", "Zl", "Zp", "Cs"))
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_EMPTY_PAIR = re.compile(r"\[\]|\{\}")


def _is_unprintable(char: str) -> bool:
    return unicodedata.category(char) in _UNPRINTABLE


def _escape(char: str) -> str:
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def printable(text, *, multiline: bool = False) -> str:
    """`text` with every control, format or separator character shown as an escape.

    Args:
        text: the text (anything else is converted with `str`).
        multiline: bool. Keep line feeds and tabs (a model card); carriage
            returns and every other such character are still escaped.
            Defaults to False (one line).

    Returns:
        The text, safe to write to a terminal.

    Example:

    >>> printable("a\\x1b]0;title\\x07b\\u202ec")
    'a\\\\x1b]0;title\\\\x07b\\\\u202ec'
    >>> printable("line 1\\nline 2\\r", multiline=True)
    'line 1\\nline 2\\\\x0d'
    """
    text = str(text)
    if text.isprintable():
        return text
    keep = "\n\t" if multiline else ""
    return "".join(
        _escape(c) if c not in keep and _is_unprintable(c) else c for c in text
    )


def first_unprintable(text: str) -> str | None:
    """The first control, format or separator character of `text` (escaped), or None.

    Example:

    >>> first_unprintable("Walk"), first_unprintable("Walk\\nRun")
    (None, '\\\\x0a')
    """
    if text.isprintable():
        return None
    return next((_escape(c) for c in text if _is_unprintable(c)), None)


def load_json(text: str | bytes, *, source: str, error: type[Exception] = ValueError):
    """Decodes JSON from outside the package, within depth and number limits.

    Args:
        text: str or UTF-8 bytes.
        source: str. The file or URL, for the message.
        error: the exception type to raise. Defaults to `ValueError`.

    Returns:
        The decoded value.

    Raises:
        error: `"<source>: not valid JSON (<why>)"`, for text that is not
            UTF-8 or JSON, is nested deeper than `MAX_JSON_DEPTH`, or holds
            an integer longer than `MAX_JSON_DIGITS` digits, NaN or an
            infinity.

    Example:

    >>> load_json('{"frames": [8]}', source="x.json")
    {'frames': [8]}
    >>> load_json("[" * 100 + "]" * 100, source="x.json")
    Traceback (most recent call last):
    ...
    ValueError: x.json: not valid JSON (nested deeper than 64 levels)
    """
    try:
        if isinstance(text, (bytes, bytearray)):
            text = bytes(text).decode("utf-8")
        _check_depth(text)
        return json.loads(
            text, parse_int=_parse_int, parse_float=_parse_float, parse_constant=_refuse_constant
        )
    except (ValueError, RecursionError) as err:  # JSONDecodeError and UnicodeDecodeError too
        raise error(f"{source}: not valid JSON ({err})") from None


def _check_depth(text: str) -> None:
    # Strings removed, only brackets are left; each pass removes the
    # innermost pairs, so a document MAX_JSON_DEPTH deep is empty after that
    # many passes. All of it runs in the regex engine, not a Python loop.
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    for _ in range(MAX_JSON_DEPTH):
        if not brackets:
            return
        fewer = _EMPTY_PAIR.sub("", brackets)
        if fewer == brackets:
            raise ValueError("unbalanced brackets")
        brackets = fewer
    if brackets:
        raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels")


def _parse_int(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_JSON_DIGITS:
        raise ValueError(f"an integer of {len(digits)} digits; at most {MAX_JSON_DIGITS}")
    return int(digits)


def _parse_float(digits: str) -> float:
    value = float(digits)
    if not math.isfinite(value):
        raise ValueError(f"the number {digits[:40]} is out of range")
    return value


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a number JSON allows")


def read_text(path: str | os.PathLike, *, error: type[Exception] = ValueError) -> str:
    """A local UTF-8 text file of at most `MAX_TEXT_BYTES` (an entry's config.json or card).

    Args:
        path: str or path.
        error: the exception type to raise. Defaults to `ValueError`.

    Returns:
        The text.

    Raises:
        error: the file cannot be read, is larger than `MAX_TEXT_BYTES`
            (the rest is not read) or is not UTF-8; naming it.

    Example:

    >>> import tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "card.md"
    >>> _ = path.write_text("# Card")
    >>> read_text(path)
    '# Card'
    """
    path = pathlib.Path(path)
    try:
        with open(path, "rb") as f:
            body = f.read(MAX_TEXT_BYTES + 1)
    except OSError as err:
        raise error(f"{path}: cannot read it ({err.strerror or err})") from None
    if len(body) > MAX_TEXT_BYTES:
        raise error(
            f"{path} is larger than {MAX_TEXT_BYTES} bytes, the most a zoo entry's text file may "
            "be (they are kilobytes); it was not read further"
        )
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as err:
        raise error(f"{path} is not UTF-8 text ({err})") from None
