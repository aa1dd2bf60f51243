"""Argument checks shared by the layers, the models and the data pipeline.

Each check raises `ValueError` in the house form, "`name` must be ...
Received: name=value", and returns the value normalised (a Python `int`, a
`(height, width)` tuple). The smallest frame size lives here too: the `high`
tap has stride 32, so a frame must be at least 32 px on each side for it to
be at least 1x1.
"""

from __future__ import annotations

import math
import numbers

# Smallest frame height and width: the stride-32 `high` tap is then at least 1x1.
MIN_IMAGE_SIZE = 32


def check_int(name: str, value, *, minimum: int = 1) -> int:
    """Checks that `value` is an integer (not a bool) of at least `minimum`.

    Args:
        name: str. The argument's name, for the message.
        value: the value to check; NumPy integers are accepted.
        minimum: int. The smallest valid value. Defaults to `1` (a positive
            integer).

    Returns:
        `value` as a Python `int`.

    Raises:
        ValueError: naming the argument and the received value.

    Example:

    >>> check_int("units", 4)
    4
    >>> check_int("units", 0)
    Traceback (most recent call last):
    ...
    ValueError: `units` must be a positive integer. Received: units=0
    """
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Integral)
        or value < minimum
    ):
        expected = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"`{name}` must be {expected}. Received: {name}={value!r}")
    return int(value)


def check_number(name: str, value, *, zero: bool = False) -> float:
    """Checks that `value` is a finite number, > 0 (or >= 0 with `zero`).

    Args:
        name: str. The argument's name, for the message.
        value: the value to check (an int or a float, not a bool).
        zero: bool. Whether 0 is valid. Defaults to `False`.

    Returns:
        `value` as a Python `float`.

    Raises:
        ValueError: naming the argument and the received value.

    Example:

    >>> check_number("timeout", 2)
    2.0
    >>> check_number("smooth", -1, zero=True)
    Traceback (most recent call last):
    ...
    ValueError: `smooth` must be a finite number >= 0. Received: smooth=-1
    """
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value < 0 or (value == 0 and not zero):
        bound = ">= 0" if zero else "> 0"
        raise ValueError(f"`{name}` must be a finite number {bound}. Received: {name}={value!r}")
    return float(value)


def check_choice(name: str, value, valid):
    """Checks that `value` is one of `valid`.

    Args:
        name: str. The argument's name, for the message.
        value: the value to check.
        valid: the allowed values (any iterable; a dict's keys).

    Returns:
        `value`.

    Raises:
        ValueError: naming the argument, the valid values and the received value.

    Example:

    >>> check_choice("mode", "max", ("mean", "max"))
    'max'
    """
    valid = tuple(valid)
    if value not in valid:
        raise ValueError(f"`{name}` must be one of {valid}. Received: {name}={value!r}")
    return value


def check_image_size(name: str, value) -> tuple[int, int]:
    """Checks a `(height, width)` pair, each at least `MIN_IMAGE_SIZE`.

    Args:
        name: str. The argument's name, for the message.
        value: a sequence of two integers.

    Returns:
        `(height, width)` as a tuple of Python ints.

    Raises:
        ValueError: for anything but two integers >= `MIN_IMAGE_SIZE`.

    Example:

    >>> check_image_size("image_size", [64, 48])
    (64, 48)
    """
    try:
        size = tuple(value)
    except TypeError:
        size = ()
    if len(size) != 2 or not all(
        isinstance(s, numbers.Integral) and not isinstance(s, bool) and s >= MIN_IMAGE_SIZE
        for s in size
    ):
        raise ValueError(
            f"`{name}` must be (height, width), each an integer of at least {MIN_IMAGE_SIZE}. "
            f"Received: {name}={value!r}"
        )
    return tuple(int(s) for s in size)
