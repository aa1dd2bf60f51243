"""Drops TensorFlow's native start-up noise from stderr, for the `mrrn` command.

TensorFlow 2.21's C++ side writes through absl before Python can set a log
level: "WARNING: All log messages before absl::InitializeLog() ...", `I0000`
lines (oneDNN, "Could not find cuda drivers") and, on a machine without an
NVIDIA driver, `E0000 ... failed call to cuInit` -- an "error" that only
says there is no GPU. `TF_CPP_MIN_LOG_LEVEL` does not reach those lines.
`filter_native_stderr` routes file descriptor 2 (what C++ code writes to)
through a pipe and copies every other line through unchanged, so real native
errors still show; Python's `sys.stderr` keeps writing to the terminal
directly. It is for the command line only: a library must not take over a
process's stderr.
"""

from __future__ import annotations

import atexit
import os
import re
import sys
import threading

# Lines TensorFlow's C++ logging writes at INFO and WARNING ("I0000 ...",
# "W0000 ...") and absl's notice that it is not initialised yet.
_NOISE = (
    re.compile(r"^[IW]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ \S+:\d+\] "),
    re.compile(r"^WARNING: All log messages before absl::InitializeLog\(\) is called"),
)
# The cuInit failure is noise only where no NVIDIA driver is installed.
_NO_DRIVER = re.compile(r"^E\d{4} .*failed call to cuInit: .*\((?:100|303)\)")


def is_noise(line: str, *, has_nvidia_driver: bool | None = None) -> bool:
    """True for a TensorFlow start-up line the `mrrn` command drops.

    Args:
        line: one line of stderr, without its newline.
        has_nvidia_driver: whether an NVIDIA driver is present (then a
            cuInit failure is a real error); `None` looks for `/dev/nvidiactl`.

    Example:

    >>> is_noise("I0000 00:00:1796009161.545467   31508 port.cc:153] oneDNN custom operations are on.")
    True
    >>> is_noise("Traceback (most recent call last):")
    False
    """
    if any(pattern.match(line) for pattern in _NOISE):
        return True
    if has_nvidia_driver is None:
        has_nvidia_driver = os.path.exists("/dev/nvidiactl")
    return not has_nvidia_driver and bool(_NO_DRIVER.match(line))


def filter_native_stderr() -> None:
    """Routes fd 2 through a filter thread that drops `is_noise` lines, until exit.

    Does nothing when `sys.stderr` is not the process's own stderr (e.g.
    under pytest's capture) or when filtering is already on.
    """
    global _active
    if _active or sys.stderr is not sys.__stderr__:
        return
    try:
        sys.stderr.flush()
        original = os.dup(2)
    except (OSError, ValueError, AttributeError):
        return
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    has_driver = os.path.exists("/dev/nvidiactl")

    def copy():
        with os.fdopen(read_end, "rb") as pipe:
            for raw in pipe:
                if not is_noise(raw.decode("utf-8", "replace").rstrip("\n"),
                                has_nvidia_driver=has_driver):
                    os.write(original, raw)

    thread = threading.Thread(target=copy, name="mrrn-stderr-filter", daemon=True)
    thread.start()
    # Python's own writes skip the pipe, so they keep their order with stdout.
    sys.stderr = open(os.dup(original), "w", buffering=1, encoding=sys.stderr.encoding,
                      errors="backslashreplace")
    _active = True

    def restore():
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        os.dup2(original, 2)  # closes the pipe's last write end: the thread sees EOF
        thread.join(timeout=5)

    atexit.register(restore)


_active = False
