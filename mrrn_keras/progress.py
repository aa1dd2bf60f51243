"""Progress bars on stderr, shown only on a terminal unless asked for."""

from __future__ import annotations

import sys

import tqdm


def progress_bar(iterable=None, *, enabled: bool | None = None, **kwargs) -> tqdm.tqdm:
    """A `tqdm` bar on stderr, off unless `enabled` (`None`: stderr is a terminal).

    Args:
        iterable: what to iterate over, or None for a manual bar.
        enabled: bool or None. `None` shows the bar when stderr is a
            terminal, so logs and pipes get no bar characters.
        **kwargs: `tqdm` arguments (`total`, `desc`, `unit`, ...).

    Returns:
        The `tqdm` object (a pass-through when disabled).

    Example:

    >>> sum(progress_bar(range(3), enabled=False))
    3
    """
    if enabled is None:
        enabled = sys.stderr.isatty()
    return tqdm.tqdm(iterable, disable=not enabled, file=sys.stderr, leave=False, **kwargs)
