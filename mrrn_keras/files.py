"""Writing files safely: names checked, paths kept inside their folder, owners of temporaries.

Untrusted input (a remote zoo entry, a URL) may suggest a file name; before
the package writes anything under such a name, `is_safe_name` checks it is
one plain name (no separators, no `..`, nothing hidden) and `is_inside`
checks that the path, symbolic links resolved, stays inside the folder it
belongs to. Temporary files and folders carry the id of the process that
writes them, so a later run can tell those of a killed process
(`process_is_gone`) from those still being written.
"""

from __future__ import annotations

import os
import pathlib
import re

# One plain file name: letters, digits and `._+-`, not starting with a dot
# (no hidden files, no `.` or `..`), at most 200 characters.
_SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._+-]{0,199}")


def is_safe_name(name) -> bool:
    """Whether `name` is a plain file name safe to create in a folder.

    Args:
        name: the candidate, already percent-decoded if it came from a URL.

    Returns:
        True for a str of letters, digits and `._+-` that does not start
        with a dot; False for anything else (separators, `..`, absolute
        paths, backslashes, control characters, empty or non-str values).

    Example:

    >>> is_safe_name("model.weights.h5"), is_safe_name("../x"), is_safe_name("a\\\\b")
    (True, False, False)
    """
    return isinstance(name, str) and _SAFE_NAME.fullmatch(name) is not None


def is_inside(root: str | os.PathLike, path: str | os.PathLike) -> bool:
    """Whether `path`, with symbolic links resolved, lies inside `root`.

    Args:
        root: the folder `path` must stay in (it need not exist yet).
        path: the path to check (it need not exist yet).

    Returns:
        True if `path` resolves to `root` or below it.
    """
    root = pathlib.Path(root).resolve()
    return pathlib.Path(path).resolve().is_relative_to(root)


def current_umask() -> int:
    """The process's umask (read by setting it and setting it back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def process_is_gone(pid) -> bool:
    """Whether no process with id `pid` runs on this machine.

    Args:
        pid: int, or None for "unknown owner" (counted as gone).

    Returns:
        True if `pid` is None, not positive, or names no running process; a
        process of another user counts as running.
    """
    if pid is None or pid <= 0:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    except OverflowError:
        return True
    return False
