"""Fetching, caching and verifying weight files (and remote entries' text files).

A fetched file lands in `<home>/weights/<sha256>/<file name>`, where `<home>`
is `$MRRN_HOME`, else `$XDG_CACHE_HOME/mrrn_keras`, else
`~/.cache/mrrn_keras`. The sha256 and the file name are checked (64 hex
digits; one plain name, see `mrrn_keras.files.is_safe_name`) and the path is
checked to resolve inside `<home>/weights`, so no entry or URL can make the
package write elsewhere. A download streams into a fresh temporary file
(`.<name>.<pid>.<random>.part`) in the target's folder, is checked against
the expected size and sha256, and only then renamed into place
(`os.replace`), so the cache never holds a partial or wrong file under the
final name. A `filelock.FileLock` on `<target>.lock` makes concurrent
processes download once: the others wait (saying so in the log, and giving
up after a timeout), then find the verified file. The rename keeps this safe
where file locks do nothing (some network filesystems): at worst two
processes download, and each renames a complete, verified file. `.part`
files of killed processes are removed by the next download of that file.

Every transfer has limits, from the environment:

    MRRN_DOWNLOAD_TIMEOUT   seconds to connect, and the longest wait for
                            the next bytes (default 60)
    MRRN_DOWNLOAD_MIN_RATE  bytes per second: the whole transfer must end
                            within TIMEOUT + size / MIN_RATE (default 20000)
    MRRN_LOCK_TIMEOUT       seconds to wait for another process's download
                            (default: that download's own limit + TIMEOUT)

Remote text (an entry's config.json or card.md) is at most `MAX_TEXT_BYTES`.

Files on the Hugging Face hub are addressed through `hub_file_url`, under
`$HF_ENDPOINT` (the variable `huggingface_hub` reads; default
https://huggingface.co), so a mirror or a local stand-in serves them.

`MRRN_OFFLINE=1` (or `true`/`yes`) forbids http(s) requests: a file missing
from the cache raises `WeightsError` naming the file, the URL and the cache
path where it can be placed by hand. `file://` URLs are read offline too.

`HF_ENDPOINT` (default `https://huggingface.co`) is the Hugging Face hub that
`hf://owner/repo` handles resolve against (`hub_endpoint`). `HF_TOKEN`, if set,
is sent as `Authorization: Bearer <token>` to that endpoint alone (so private
and gated repositories can be read): only over https or to a loopback host,
never to another host, and never after a redirect to another scheme, host or
port (the hub sends large files to a CDN by signed URLs that need no token).
The token never appears in a message or a log line.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import http.client
import io
import ipaddress
import logging
import math
import os
import pathlib
import re
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable

import filelock
import tqdm

from mrrn_keras.errors import WeightsError
from mrrn_keras.files import is_inside, is_safe_name, process_is_gone

logger = logging.getLogger(__name__)

TIMEOUT_S = 60.0
HUB_ENDPOINT = "https://huggingface.co"
MIN_RATE = 20_000
MAX_TEXT_BYTES = 1 << 20
_CHUNK = 1 << 20
_SHA256 = re.compile(r"[0-9a-f]{64}")
# `.<name>.<pid>.<random>.part`: the pid tells a killed writer's file.
_PART = re.compile(r"\.(?P<name>.+)\.(?P<pid>[0-9]+)\.[^.]+\.part")
_TRUE = ("1", "true", "yes", "on")
_TOKEN_MAX = 1024
_TOKEN = re.compile(r"[\x21-\x7e]{1,%d}" % _TOKEN_MAX)
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


def hub_endpoint() -> str:
    """The Hugging Face hub's base URL: `$HF_ENDPOINT`, else `HUB_ENDPOINT`.

    The same variable `huggingface_hub` reads, so a mirror set for it
    serves this package too.

    Returns:
        An http(s) URL without a trailing slash.

    Raises:
        WeightsError: `HF_ENDPOINT` is not an http(s) URL of a host.

    Example:

    >>> import os
    >>> hub_endpoint() == (os.environ.get("HF_ENDPOINT") or HUB_ENDPOINT).rstrip("/")
    True
    """
    raw = os.environ.get("HF_ENDPOINT", "").strip() or HUB_ENDPOINT
    parts = urllib.parse.urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise WeightsError(
            f"HF_ENDPOINT must be an http(s) URL such as {HUB_ENDPOINT}. Received: HF_ENDPOINT={raw!r}"
        )
    return raw.rstrip("/")


def hub_token() -> str | None:
    """The hub access token from `HF_TOKEN`, or None when it is unset or empty.

    Returns:
        The token (surrounding whitespace removed), or None.

    Raises:
        WeightsError: `HF_TOKEN` is not one word of printable ASCII (the
            message does not repeat it).

    Example:

    >>> import os
    >>> (hub_token() is None) == (not os.environ.get("HF_TOKEN", "").strip())
    True
    """
    raw = os.environ.get("HF_TOKEN", "").strip()
    if not raw:
        return None
    if not _TOKEN.fullmatch(raw):
        raise WeightsError(
            f"HF_TOKEN must be one word of printable ASCII, at most {_TOKEN_MAX} characters (a "
            "Hugging Face access token); it was not sent"
        )
    return raw


def _origin(url: str) -> tuple:
    """(scheme, host, port) of a URL, with the scheme's default port filled in."""
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:  # a malformed port: an origin nothing equals
        return (scheme, parts.netloc, None)
    return (scheme, (parts.hostname or "").lower(), port or {"http": 80, "https": 443}.get(scheme))


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _auth_header(url: str) -> str | None:
    """`Bearer <HF_TOKEN>` for a URL on the hub endpoint that may carry it, else None."""
    scheme, host, _ = origin = _origin(url)
    if not is_url(url) or scheme == "file":
        return None
    try:
        hub = _origin(hub_endpoint())
    except WeightsError:
        return None  # a request that is not to the hub needs no valid HF_ENDPOINT
    if origin != hub:
        return None
    token = hub_token()
    if token is None:
        return None
    if scheme != "https" and not _is_loopback(host):
        logger.warning(
            "HF_TOKEN is set but not sent to %s: a token goes only over https (or to a loopback "
            "host).", hub_endpoint(),
        )
        return None
    return f"Bearer {token}"


class _Deadline:
    """The clock of one transfer: every wait for bytes ends by `end` (time.monotonic)."""

    def __init__(self, limit: float, stall: float):
        self.limit = limit
        self.stall = stall
        self.end = time.monotonic() + limit

    def wait(self) -> float:
        """Seconds the next wait for bytes may last; TimeoutError once the deadline passed."""
        left = self.end - time.monotonic()
        if left <= 0:
            raise TimeoutError(
                f"the transfer did not finish within {self.limit:.1f} s "
                "(MRRN_DOWNLOAD_TIMEOUT + size / MRRN_DOWNLOAD_MIN_RATE)"
            )
        return min(self.stall, left)


class _DeadlineReader(io.RawIOBase):
    """A response's socket reader whose every read ends by the transfer's deadline.

    Headers, `100 Continue` interim responses, chunk-size lines, the body
    and trailers are all read through it, so no pace of bytes holds a fetch
    past its limit.
    """

    def __init__(self, raw, sock, deadline: _Deadline):
        super().__init__()
        self._raw = raw
        self._sock = sock
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        self._sock.settimeout(self._deadline.wait())
        try:
            return self._raw.readinto(buffer)
        except TimeoutError:
            self._deadline.wait()  # says so if it was the deadline, not a stall
            raise

    def fileno(self) -> int:
        return self._raw.fileno()

    def close(self) -> None:
        self._raw.close()  # the socket's own reader: drops the response's hold on it
        super().close()


class _DeadlineResponse(http.client.HTTPResponse):
    def __init__(self, sock, *args, deadline: _Deadline, **kwargs):
        super().__init__(sock, *args, **kwargs)
        self.fp = io.BufferedReader(_DeadlineReader(self.fp.detach(), sock, deadline))


class _DeadlineConnection:
    """Mixed into http.client's connections: connect within the deadline, read under it."""

    def __init__(self, *args, deadline: _Deadline, **kwargs):
        super().__init__(*args, **kwargs)
        self._deadline = deadline

    def connect(self):
        self.timeout = self._deadline.wait()  # each redirect's connection too
        super().connect()

    def response_class(self, sock, *args, **kwargs):
        return _DeadlineResponse(sock, *args, deadline=self._deadline, **kwargs)


class _DeadlineHTTPConnection(_DeadlineConnection, http.client.HTTPConnection):
    pass


class _DeadlineHTTPSConnection(_DeadlineConnection, http.client.HTTPSConnection):
    pass


class _DeadlineHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, deadline: _Deadline):
        super().__init__()
        self._deadline = deadline

    def http_open(self, req):
        return self.do_open(
            functools.partial(_DeadlineHTTPConnection, deadline=self._deadline), req
        )


class _DeadlineHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, deadline: _Deadline):
        super().__init__()
        self._deadline = deadline

    def https_open(self, req):
        return self.do_open(
            functools.partial(_DeadlineHTTPSConnection, deadline=self._deadline), req,
            context=self._context,
        )


def _check_redirect(from_url: str, to_url: str) -> None:
    scheme = urllib.parse.urlsplit(to_url).scheme.lower()
    if scheme and scheme not in ("http", "https"):
        raise WeightsError(
            f"{from_url} redirected to a {scheme}: URL, refused (transfers are http(s) only)"
        )


class _CheckedRedirects(urllib.request.HTTPRedirectHandler):
    """Follows redirects to http(s) only; the Authorization header only to the same origin."""

    def http_error_302(self, req, fp, code, msg, headers):
        # urllib itself refuses some schemes here, in words of its own.
        _check_redirect(req.full_url, headers.get("location") or headers.get("uri") or "")
        return super().http_error_302(req, fp, code, msg, headers)

    http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        # `newurl` is resolved against the request's URL: the URL requested next.
        _check_redirect(req.full_url, newurl)
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        auth = req.unredirected_hdrs.get("Authorization")
        if new is not None and auth and _origin(newurl) == _origin(req.full_url):
            new.add_unredirected_header("Authorization", auth)
        return new


def _open(url: str, deadline: _Deadline):
    """Opens `url` under `deadline` (connect, headers, every redirect), with the hub token
    for the hub endpoint (see the module docstring); redirects go to http(s) only."""
    request = urllib.request.Request(url)
    auth = _auth_header(url)
    if auth is not None:
        # An unredirected header: urllib copies only the others onto a redirect.
        request.add_unredirected_header("Authorization", auth)
    opener = urllib.request.build_opener(
        _DeadlineHTTPHandler(deadline), _DeadlineHTTPSHandler(deadline), _CheckedRedirects
    )
    return opener.open(request, timeout=deadline.wait())


def hub_file_url(repo: str, revision: str, path: str) -> str:
    """The download URL of a file of a hub repository at one revision.

    Args:
        repo: str. `"owner/name"`, e.g. `"timm/resnet18.tv_in1k"`.
        revision: str. A commit hash (immutable) or a branch name.
        path: str. The file's path in the repository.

    Returns:
        `<hub_endpoint()>/<repo>/resolve/<revision>/<path>`, percent-quoted.

    Example:

    >>> hub_file_url("timm/resnet18.tv_in1k", "a987fd6", "model.safetensors").endswith(
    ...     "/timm/resnet18.tv_in1k/resolve/a987fd6/model.safetensors")
    True
    """
    quote = urllib.parse.quote
    return f"{hub_endpoint()}/{quote(repo)}/resolve/{quote(revision, safe='')}/{quote(path)}"


def sha256_file(path) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_file(
    path, *, sha256: str, size: int | None = None, max_size: int | None = None
) -> str | None:
    """Checks a file's size (exact, or at most `max_size`) and sha256: None if right, else why not."""
    actual_size = os.path.getsize(path)
    if size is not None and actual_size != size:
        return f"size is {actual_size} bytes, expected {size}"
    if max_size is not None and actual_size > max_size:
        return f"size is {actual_size} bytes, expected at most {max_size}"
    actual = sha256_file(path)
    if actual != sha256:
        return f"sha256 is {actual}, expected {sha256}"
    return None


def _env_positive(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (value > 0 and math.isfinite(value)):
        raise WeightsError(f"{name} must be a positive number. Received: {name}={raw!r}")
    return value


def download_timeout() -> float:
    """Seconds to connect and to wait for the next bytes (`MRRN_DOWNLOAD_TIMEOUT`, default 60)."""
    return _env_positive("MRRN_DOWNLOAD_TIMEOUT", TIMEOUT_S)


def transfer_limit(size: int | None) -> float:
    """Seconds a whole transfer of `size` bytes may take.

    Args:
        size: int or None. Expected bytes (None counts as `MAX_TEXT_BYTES`).

    Returns:
        `MRRN_DOWNLOAD_TIMEOUT + size / MRRN_DOWNLOAD_MIN_RATE`.

    Raises:
        WeightsError: one of the variables is not a positive number.
    """
    rate = _env_positive("MRRN_DOWNLOAD_MIN_RATE", MIN_RATE)
    return download_timeout() + (MAX_TEXT_BYTES if size is None else size) / rate


def _lock_timeout(size: int | None) -> float:
    return _env_positive("MRRN_LOCK_TIMEOUT", transfer_limit(size) + download_timeout())


def weights_cache_path(sha256: str, file_name: str) -> pathlib.Path:
    """Where a weights file with this sha256 is cached.

    Args:
        sha256: str. 64 lowercase hex digits.
        file_name: str. A plain file name (`mrrn_keras.files.is_safe_name`).

    Returns:
        `<home>/weights/<sha256>/<file_name>`.

    Raises:
        WeightsError: a malformed sha256 or file name, or a path that
            resolves outside `<home>/weights` (a symbolic link).
    """
    if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
        raise WeightsError(f"A sha256 must be 64 lowercase hex digits. Received: sha256={sha256!r}")
    if not is_safe_name(file_name):
        raise WeightsError(
            "A cached file's name must be one plain name (letters, digits, `._+-`, not starting "
            f"with a dot). Received: file_name={file_name!r}"
        )
    root = cache_home() / "weights"
    path = root / sha256 / file_name
    if not is_inside(root, path):
        raise WeightsError(f"{path} resolves outside the cache folder {root}; nothing was written")
    return path


def _manual_hint(url: str, target: pathlib.Path) -> str:
    return (
        f"To install it by hand, download {url} on a machine with access and place it at "
        f"{target} (its sha256 is checked on load)."
    )


def _unwritable(folder, err: OSError) -> WeightsError:
    return WeightsError(
        f"Cannot write to the cache folder {folder}: {_describe(err)}. Make it writable, or "
        "set MRRN_HOME to a writable folder."
    )


def fetch_file(
    url: str,
    *,
    sha256: str,
    size: int | None,
    file_name: str,
    progress: bool | None = None,
    max_size: int | None = None,
) -> pathlib.Path:
    """Returns the cached, verified path of `url`, downloading it if needed.

    Args:
        url: str. http(s) or file URL.
        sha256: str. Expected hex sha256 (64 lowercase hex digits).
        size: int or None. Expected size in bytes.
        file_name: str. Name of the file in the cache: one plain name.
        progress: bool or None. Show a progress bar on stderr; `None` shows
            one only when stderr is a terminal.
        max_size: int or None. With `size=None`, the most bytes the file
            may have: an upper bound where the exact size is not published
            (the sha256 still pins the content). It also sets the time limit.

    Returns:
        The path `<home>/weights/<sha256>/<file_name>`.

    Raises:
        WeightsError: a malformed sha256 or file name; offline and not
            cached; the download failed, was too slow or did not match the
            size/sha256; another process's download did not finish in
            time; or the cache folder is not writable. The message names
            the URL or folder, and for downloads the cache path and how to
            place the file by hand; nothing partial is left.
    """
    target = weights_cache_path(sha256, file_name)
    limits = dict(size=size, max_size=None if size is not None else max_size)
    if _cached_and_valid(target, sha256, **limits):
        return target
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme != "file" and is_offline():
        state = "is corrupt" if target.exists() else "is not in the cache"
        raise WeightsError(
            f"{file_name} {state} and MRRN_OFFLINE is set, so {url} was not downloaded. "
            + _manual_hint(url, target)
        )
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise _unwritable(target.parent, err) from err
    bound = size if size is not None else max_size
    with _locked(target, f"downloading {url}", timeout=_lock_timeout(bound)):
        # Another process may have finished the download while this one waited.
        if _cached_and_valid(target, sha256, **limits):
            return target
        _download(url, target, sha256=sha256, progress=progress, **limits)
    return target


@contextlib.contextmanager
def _locked(target: pathlib.Path, doing: str, *, timeout: float):
    """Holds `<target>.lock`; logs while another process holds it, gives up after `timeout`."""
    path = f"{target}.lock"
    lock = filelock.FileLock(path)
    try:
        try:
            lock.acquire(timeout=0)
        except filelock.Timeout:
            logger.warning(
                "Waiting up to %.0f s for %s: another process is %s to %s.",
                timeout, path, doing, target,
            )
            lock.acquire(timeout=timeout)
    except filelock.Timeout as err:
        raise WeightsError(
            f"Gave up after {timeout:.0f} s waiting for the lock {path}: another process is "
            f"{doing} to {target}. If no other process is running, delete {path}; "
            "MRRN_LOCK_TIMEOUT sets how long to wait."
        ) from err
    except OSError as err:
        raise _unwritable(target.parent, err) from err
    try:
        yield
    finally:
        lock.release()


def _cached_and_valid(
    target: pathlib.Path, sha256: str, size: int | None, max_size: int | None = None
) -> bool:
    if not target.is_file():
        return False
    problem = verify_file(target, sha256=sha256, size=size, max_size=max_size)
    if problem is None:
        return True
    logger.warning("Cached %s is corrupt (%s); it will be fetched again.", target, problem)
    return False


def _remove_stale_parts(target: pathlib.Path) -> None:
    """Deletes `.part` files of `target` left by killed processes.

    A part counts as stale when its writer's pid runs no process here and it
    has not changed for `download_timeout()` seconds (a live download on
    another machine of a shared cache writes at least that often).
    """
    quiet_since = time.time() - download_timeout()
    for part in target.parent.glob(f".{target.name}.*.part"):
        match = _PART.fullmatch(part.name)
        pid = int(match["pid"]) if match and match["name"] == target.name else None
        try:
            if part.stat().st_mtime < quiet_since and process_is_gone(pid):
                part.unlink()
                logger.info("Removed %s, left by a killed download", part)
        except OSError as err:
            logger.warning("Could not remove the stale %s: %s", part, _describe(err))


def _part_file(target: pathlib.Path):
    """(open binary file, path) of a fresh `.part` file beside `target`."""
    _remove_stale_parts(target)
    try:
        fd, name = tempfile.mkstemp(
            prefix=f".{target.name}.{os.getpid()}.", suffix=".part", dir=target.parent
        )
    except OSError as err:
        raise _unwritable(target.parent, err) from err
    return os.fdopen(fd, "wb"), pathlib.Path(name)


def _download(url, target: pathlib.Path, *, sha256, size, max_size, progress) -> None:
    out, tmp = _part_file(target)
    try:
        with out:
            digest, received = _stream(
                url, out, target=target, size=size, limit=size if size is not None else max_size,
                progress=progress,
            )
            out.flush()
            os.fsync(out.fileno())
        seen = None
        if size is not None and received != size:
            seen = f"more than {size}" if received > size else f"only {received} of {size}"
            seen += " bytes"
        elif max_size is not None and received > max_size:
            seen = f"more than {max_size} bytes, the most it may have"
        if seen is not None:
            raise WeightsError(
                f"Download of {url} has the wrong size: received {seen}; "
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


def _read_url(url: str, consume: Callable[[bytes], bool], *, size: int | None):
    """Feeds the body of `url` to `consume` block by block, until it returns False.

    Every wait for bytes is limited by `download_timeout()` and the whole
    transfer (connect, response headers, redirects, body, trailers) by
    `transfer_limit(size)`, so a server that stalls or drips bytes
    anywhere cannot hold the caller.

    Returns:
        The response's headers (an `email.message.Message`).

    Raises:
        OSError (TimeoutError past the limit), ValueError or
        http.client.HTTPException: see `_FETCH_ERRORS`.
    """
    deadline = _Deadline(transfer_limit(size), download_timeout())
    with _open(url, deadline) as response:
        # read1 returns what has arrived; read(n) would wait for all n bytes.
        read = getattr(response, "read1", response.read)
        while block := read(_CHUNK):
            if not consume(block):
                break
        return response.headers


def _stream(url, out, *, target, size, limit, progress) -> tuple[str, int]:
    """Copies `url` into `out` (stopping past `limit` bytes); returns (hex sha256, bytes received)."""
    digest = hashlib.sha256()
    received = 0
    if progress is None:
        progress = sys.stderr.isatty()
    with tqdm.tqdm(
        total=size, unit="B", unit_scale=True, desc=target.name,
        disable=not progress, file=sys.stderr, leave=False,
    ) as bar:

        def consume(block: bytes) -> bool:
            nonlocal received
            digest.update(block)
            out.write(block)
            received += len(block)
            bar.update(len(block))
            return limit is None or received <= limit

        try:
            _read_url(url, consume, size=limit)
        except _FETCH_ERRORS as err:
            raise WeightsError(
                f"Could not download {url}: {_describe(err)}; nothing was cached at {target}. "
                + _manual_hint(url, target)
            ) from err
    return digest.hexdigest(), received


def _auth_hint(url: str) -> str:
    """What to do about a refusal (401/403) from the hub endpoint; "" for other hosts."""
    try:
        on_hub = _origin(url) == _origin(hub_endpoint())
        sent = _auth_header(url) is not None
    except WeightsError:
        return ""
    if not on_hub:
        return ""
    if sent:
        return " (HF_TOKEN was sent; that token may not read this repository)"
    return " (a private or gated hub repository: set HF_TOKEN to an access token that can read it)"


def _describe(err: BaseException) -> str:
    if isinstance(err, urllib.error.HTTPError):
        hint = _auth_hint(err.url or "") if err.code in (401, 403) else ""
        return f"HTTP {err.code} {err.reason}{hint}"
    if isinstance(err, urllib.error.URLError):
        return f"{err.reason}"
    return " ".join(str(err).split()) or type(err).__name__


def fetch_text(
    url: str,
    *,
    parse: Callable[[str], object] | None = None,
    reuse_cached: bool = False,
    missing_ok: bool = False,
    headers: dict | None = None,
):
    """Reads a small text file (an entry's config.json or card.md) from a URL.

    At most `MAX_TEXT_BYTES` are read, within `transfer_limit(None)`
    seconds. The text is checked by `parse` before anything is cached; then,
    for http(s) URLs, a copy is kept in `<home>/text/<sha256 of the URL>`
    (written only when it changed, and skipped with a warning where the
    cache is read-only). Offline (`MRRN_OFFLINE`), that copy is read instead.
    Online, the URL is fetched again on every call (what it names may have
    changed), unless `reuse_cached` says it cannot change.

    Args:
        url: str. http(s) or file URL.
        parse: callable or None. Called on the text (a cached copy too);
            its exceptions propagate and its result is returned.
        reuse_cached: bool. Read the cached copy, if there is one, without
            a request: for URLs whose content is fixed (a hub file at a
            commit). Defaults to False.
        missing_ok: bool. Return None when the server answers 404 (an
            optional file such as a remote card.md). Defaults to False.
        headers: dict or None. When the URL is requested (not read from the
            cache), filled with the response's headers, names in lower case
            (e.g. the hub's `x-repo-commit`). Defaults to None.

    Returns:
        `parse(text)`, or the text when `parse` is None; None for a missing
        file with `missing_ok`.

    Raises:
        WeightsError: offline with no cached copy, the request failed or
            was too slow, or the file is too large or not UTF-8.

    Example:

    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "card.md"
    >>> _ = path.write_text("# A card")
    >>> fetch_text(path.as_uri(), parse=str.upper)
    '# A CARD'
    """
    parse = parse or (lambda text: text)
    remote = urllib.parse.urlsplit(url).scheme != "file"
    cached = cache_home() / "text" / hashlib.sha256(url.encode("utf-8")).hexdigest()
    if remote and (is_offline() or reuse_cached) and cached.is_file():
        return parse(cached.read_text(encoding="utf-8"))
    if remote and is_offline():
        raise WeightsError(
            f"MRRN_OFFLINE is set and {url} was never fetched, so it is not in the cache. "
            f"To install it by hand, save it as {cached}."
        )
    text = _read_text(url, missing_ok=missing_ok, headers=headers)
    if text is None:
        return None
    result = parse(text)
    if remote:
        _keep_text(cached, text)
    return result


def _read_text(url: str, *, missing_ok: bool, headers: dict | None = None) -> str | None:
    body = bytearray()

    def consume(block: bytes) -> bool:
        body.extend(block)
        return len(body) <= MAX_TEXT_BYTES

    try:
        received = _read_url(url, consume, size=None)
    except _FETCH_ERRORS as err:
        if missing_ok and isinstance(err, urllib.error.HTTPError) and err.code == 404:
            return None
        raise WeightsError(f"Could not fetch {url}: {_describe(err)}") from err
    if len(body) > MAX_TEXT_BYTES:
        raise WeightsError(
            f"{url} is larger than {MAX_TEXT_BYTES} bytes, the most a zoo entry's text file "
            "may be (they are kilobytes); it was not read further"
        )
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as err:
        raise WeightsError(f"{url} is not UTF-8 text ({err})") from err
    if headers is not None and received is not None:
        headers.update((name.lower(), value) for name, value in received.items())
    return text


def _keep_text(cached: pathlib.Path, text: str) -> None:
    """Keeps `text` at `cached` for offline use; a cache that cannot be written only warns."""
    try:
        if cached.is_file() and cached.read_text(encoding="utf-8") == text:
            return
        cached.parent.mkdir(parents=True, exist_ok=True)
        out, tmp = _part_file(cached)
    except (OSError, UnicodeDecodeError) as err:
        logger.warning(
            "Could not keep a copy in %s (%s): offline loads will not find it.",
            cached, _describe(err),
        )
        return
    try:
        with out:
            out.write(text.encode("utf-8"))
        os.replace(tmp, cached)
    except OSError as err:
        logger.warning("Could not keep a copy in %s (%s).", cached, _describe(err))
    finally:
        tmp.unlink(missing_ok=True)
