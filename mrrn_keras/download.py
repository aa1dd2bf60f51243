"""Fetching, caching and verifying weight files (and remote entries' text files).

A fetched file lands in `<home>/weights/<sha256>/<file name>`, where `<home>`
is `$MRRN_HOME`, else `$XDG_CACHE_HOME/mrrn_keras`, else
`~/.cache/mrrn_keras`. A download streams into a fresh temporary file in the
target's folder, is checked against the expected size and sha256, and only
then renamed into place (`os.replace`), so the cache never holds a partial or
wrong file under the final name. A `filelock.FileLock` on `<target>.lock`
makes concurrent processes download once: the others wait, then find the
verified file. The rename keeps this safe where file locks do nothing (some
network filesystems): at worst two processes download, and each renames a
complete, verified file.

`MRRN_OFFLINE=1` (or `true`/`yes`) forbids http(s) requests: a file missing
from the cache raises `WeightsError` naming the file, the URL and the cache
path where it can be placed by hand. `file://` URLs are read offline too.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import pathlib
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request

import filelock
import tqdm

from mrrn_keras.errors import WeightsError

logger = logging.getLogger(__name__)

TIMEOUT_S = 60.0
_CHUNK = 1 << 20
_TRUE = ("1", "true", "yes", "on")
# URLError/HTTPError, refused connections and timeouts are OSErrors; a truncated
# body raises http.client.IncompleteRead; a malformed URL raises ValueError.
_FETCH_ERRORS = (OSError, ValueError, http.client.HTTPException)


def cache_home() -> pathlib.Path:
    """The cache root: `$MRRN_HOME`, else `$XDG_CACHE_HOME/mrrn_keras`, else `~/.cache/mrrn_keras`."""
    home = os.environ.get("MRRN_HOME")
    if home:
        return pathlib.Path(home).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return pathlib.Path(xdg).expanduser() / "mrrn_keras"


def is_offline() -> bool:
    """Whether `MRRN_OFFLINE` forbids network requests."""
    return os.environ.get("MRRN_OFFLINE", "").strip().lower() in _TRUE


def is_url(value) -> bool:
    """Whether `value` is a str with a URL scheme this module reads (http, https, file)."""
    return isinstance(value, str) and urllib.parse.urlsplit(value).scheme in ("http", "https", "file")


def sha256_file(path) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_file(path, *, sha256: str, size: int | None = None) -> str | None:
    """Checks a file's size and sha256; returns `None` if it matches, else why not."""
    actual_size = os.path.getsize(path)
    if size is not None and actual_size != size:
        return f"size is {actual_size} bytes, expected {size}"
    actual = sha256_file(path)
    if actual != sha256:
        return f"sha256 is {actual}, expected {sha256}"
    return None


def weights_cache_path(sha256: str, file_name: str) -> pathlib.Path:
    """Where a weights file with this sha256 is cached."""
    return cache_home() / "weights" / sha256 / file_name


def _manual_hint(url: str, target: pathlib.Path) -> str:
    return (
        f"To install it by hand, download {url} on a machine with access and place it at "
        f"{target} (its sha256 is checked on load)."
    )


def fetch_file(
    url: str,
    *,
    sha256: str,
    size: int | None,
    file_name: str,
    progress: bool | None = None,
) -> pathlib.Path:
    """Returns the cached, verified path of `url`, downloading it if needed.

    Args:
        url: str. http(s) or file URL.
        sha256: str. Expected hex sha256 (64 lowercase hex digits).
        size: int or None. Expected size in bytes.
        file_name: str. Name of the file in the cache.
        progress: bool or None. Show a progress bar on stderr; `None` shows
            one only when stderr is a terminal.

    Returns:
        The path `<home>/weights/<sha256>/<file_name>`.

    Raises:
        WeightsError: offline and not cached, or the download failed or did
            not match the size/sha256. The message names the URL, the cache
            path and how to place the file by hand; nothing partial is left.
    """
    target = weights_cache_path(sha256, file_name)
    if _cached_and_valid(target, sha256, size):
        return target
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme != "file" and is_offline():
        state = "is corrupt" if target.exists() else "is not in the cache"
        raise WeightsError(
            f"{file_name} {state} and MRRN_OFFLINE is set, so {url} was not downloaded. "
            + _manual_hint(url, target)
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    with filelock.FileLock(str(target) + ".lock"):
        # Another process may have finished the download while this one waited.
        if _cached_and_valid(target, sha256, size):
            return target
        _download(url, target, sha256=sha256, size=size, progress=progress)
    return target


def _cached_and_valid(target: pathlib.Path, sha256: str, size: int | None) -> bool:
    if not target.is_file():
        return False
    problem = verify_file(target, sha256=sha256, size=size)
    if problem is None:
        return True
    logger.warning("Cached %s is corrupt (%s); it will be fetched again.", target, problem)
    return False


def _download(url, target: pathlib.Path, *, sha256, size, progress) -> None:
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    tmp = pathlib.Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            digest, received = _stream(
                url, out, target=target, size=size, progress=progress
            )
            out.flush()
            os.fsync(out.fileno())
        if size is not None and received != size:
            seen = f"more than {size}" if received > size else f"only {received} of {size}"
            raise WeightsError(
                f"Download of {url} has the wrong size: received {seen} bytes; "
                f"nothing was cached at {target}. " + _manual_hint(url, target)
            )
        if digest != sha256:
            raise WeightsError(
                f"Download of {url} does not match its checksum: sha256 {digest}, expected "
                f"{sha256}; the file was discarded, nothing was cached at {target}. "
                + _manual_hint(url, target)
            )
        os.replace(tmp, target)
        logger.info("Downloaded %s to %s", url, target)
    finally:
        tmp.unlink(missing_ok=True)


def _stream(url, out, *, target, size, progress) -> tuple[str, int]:
    """Copies `url` into `out`; returns (hex sha256, bytes received)."""
    digest = hashlib.sha256()
    received = 0
    if progress is None:
        progress = sys.stderr.isatty()
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            total = size or int(response.headers.get("Content-Length") or 0) or None
            with tqdm.tqdm(
                total=total, unit="B", unit_scale=True, desc=target.name,
                disable=not progress, file=sys.stderr, leave=False,
            ) as bar:
                while block := response.read(_CHUNK):
                    digest.update(block)
                    out.write(block)
                    received += len(block)
                    bar.update(len(block))
                    if size is not None and received > size:
                        break
    except _FETCH_ERRORS as err:
        raise WeightsError(
            f"Could not download {url}: {_describe(err)}; nothing was cached at {target}. "
            + _manual_hint(url, target)
        ) from err
    return digest.hexdigest(), received


def _describe(err: BaseException) -> str:
    if isinstance(err, urllib.error.HTTPError):
        return f"HTTP {err.code} {err.reason}"
    if isinstance(err, urllib.error.URLError):
        return f"{err.reason}"
    return " ".join(str(err).split()) or type(err).__name__


def fetch_text(url: str) -> str:
    """Reads a small text file (an entry's config.json or card.md) from a URL.

    Online, the text is fetched and a copy kept in `<home>/text/<sha256 of
    the URL>`; offline (http(s) URLs under `MRRN_OFFLINE`), that copy is
    returned, so a remote entry loaded once keeps working offline.

    Raises:
        WeightsError: offline with no cached copy, or the request failed.
    """
    cached = cache_home() / "text" / hashlib.sha256(url.encode("utf-8")).hexdigest()
    if urllib.parse.urlsplit(url).scheme != "file" and is_offline():
        if cached.is_file():
            return cached.read_text(encoding="utf-8")
        raise WeightsError(
            f"MRRN_OFFLINE is set and {url} was never fetched, so it is not in the cache. "
            f"To install it by hand, save it as {cached}."
        )
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            text = response.read().decode("utf-8")
    except _FETCH_ERRORS as err:
        raise WeightsError(f"Could not fetch {url}: {_describe(err)}") from err
    cached.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{cached.name}.", suffix=".part", dir=cached.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(tmp, cached)
    finally:
        pathlib.Path(tmp).unlink(missing_ok=True)
    return text
