"""Tests for mrrn_keras/text.py (outside text shown safely, JSON under limits) and the label rule."""

import pytest

from mrrn_keras.labels import resolve_labels
from mrrn_keras.text import first_unprintable, load_json, printable

HOSTILE = "ok\x1b[2J\x1b]0;title\x07\x9b31m\u202etxt\u2028\u2029\x7f\ud800"


def test_printable_escapes_every_control_format_and_separator_character():
    shown = printable(HOSTILE)
    assert shown == "ok\\x1b[2J\\x1b]0;title\\x07\\x9b31m\\u202etxt\\u2028\\u2029\\x7f\\ud800"
    assert shown.isprintable()
    assert printable("Café, 東京 ok") == "Café, 東京 ok"
    card = printable("# Card\n\tline\r\x1b[8m", multiline=True)
    assert card == "# Card\n\tline\\x0d\\x1b[8m"


@pytest.mark.parametrize("text", ["a\nb", "a\rb", "a\u2028b", "a\x85b", "a\u202eb", "a\x00b"])
def test_first_unprintable_finds_line_breaks_and_controls(text):
    assert first_unprintable(text) is not None
    assert first_unprintable("Jump rope") is None


@pytest.mark.parametrize("labels", [["a", "b\nc"], ["a\u2028", "b"], ["\x1b[31ma", "b"]])
def test_labels_with_line_breaks_never_reach_labels_txt(labels):
    # resolve_labels is the one rule predict, streaming and export name classes by: a
    # labels.txt of its result has exactly one line per class.
    with pytest.raises(ValueError, match=r"`labels\[\d\]` must be one line of printable text"):
        resolve_labels(labels, object(), None, 2)
    names = resolve_labels(["a", "b"], object(), None, 2)
    assert len("\n".join(names).splitlines()) == 2


def test_load_json_limits_in_one_line():
    with pytest.raises(ValueError, match=r"^x: not valid JSON \(nested deeper than 64 levels\)$"):
        load_json("[" * 1_000_000 + "]" * 1_000_000, source="x")
    assert load_json("[" * 64 + "]" * 64, source="x") is not None
    with pytest.raises(ValueError, match="an integer of 4301 digits"):
        load_json("1" * 4301, source="x")
    for text in ("Infinity", "[1e999]", "-NaN"):
        with pytest.raises(ValueError, match="not valid JSON"):
            load_json(text, source="x")
    with pytest.raises(ValueError, match="x: not valid JSON"):
        load_json(b"\xff", source="x")
    assert load_json('{"a": "[[[{", "b": -12}', source="x") == {"a": "[[[{", "b": -12}
