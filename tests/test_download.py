"""Tests for mrrn_keras/download.py and mrrn_keras/files.py: what a hostile or broken source,
a slow server, a killed process or an unwritable cache can make the package do."""

import json
import logging
import os
import pathlib
import re
import time

import filelock
import pytest

from mrrn_keras import cli
from mrrn_keras.download import MAX_TEXT_BYTES, sha256_file, weights_cache_path
from mrrn_keras.errors import WeightsError, ZooError
from mrrn_keras.files import (
    OWNED_MARKER,
    check_replaceable,
    is_inside,
    is_safe_name,
    mark_owned,
    record_files,
)
from mrrn_keras.model import MRRN
from mrrn_keras.zoo import load_mrrn, variant_info
from tests.test_zoo import (  # noqa: F401  (fixtures)
    LABELS,
    TINY,
    home,
    server,
    tiny,
    url_entry,
    write_tiny_entry,
)

ESCAPE = "escaped.weights.h5"
is_root = hasattr(os, "geteuid") and os.geteuid() == 0


def serve_entry(server, folder, name="mrrn_test.tiny"):
    """Serves an entry folder's text files under /zoo/<name>/ and returns its URL."""
    for file in ("config.json", "card.md"):
        server.files[f"/zoo/{name}/{file}"] = (folder / file).read_bytes()
    return f"{server.url}/zoo/{name}"


def files_under(root):
    """Files below `root` but lock files, relative to it."""
    return sorted(
        str(p.relative_to(root))
        for p in pathlib.Path(root).rglob("*")
        if p.is_file() and p.suffix != ".lock"
    )


def drip(handler, *, length=1 << 20, steps=400, pause_s=0.05):
    """Promises `length` bytes, then sends one byte per `pause_s` (until the client leaves)."""
    handler.send_response(200)
    handler.send_header("Content-Length", str(length))
    handler.end_headers()
    try:
        for _ in range(steps):
            handler.wfile.write(b"x")
            handler.wfile.flush()
            time.sleep(pause_s)
    except OSError:
        pass


def endless(handler, *, block=b"{" * 65536, limit=8 * MAX_TEXT_BYTES):
    """A body with no length that goes on far past any text cap."""
    handler.send_response(200)
    handler.end_headers()
    handler.close_connection = True
    try:
        for _ in range(limit // len(block)):
            handler.wfile.write(block)
    except OSError:
        pass


# === Names and paths ===


def test_only_a_real_marker_proves_a_folder_the_packages(tmp_path):
    from mrrn_keras.errors import ExistingPathError

    ours = tmp_path / "ours"
    ours.mkdir()
    mark_owned(ours, "frame cache")
    assert check_replaceable(ours, "frame cache", overwrite=True)
    assert not check_replaceable(tmp_path / "free", "frame cache", overwrite=False)
    with pytest.raises(ExistingPathError, match="already exists"):
        check_replaceable(ours, "frame cache", overwrite=False)
    with pytest.raises(ExistingPathError, match="not a zoo entry"):
        check_replaceable(ours, "zoo entry", overwrite=True)  # another kind
    link = tmp_path / "link"
    link.symlink_to(ours, target_is_directory=True)
    with pytest.raises(ExistingPathError, match="symbolic link"):
        check_replaceable(link, "frame cache", overwrite=True)
    linked_marker = tmp_path / "linked_marker"
    linked_marker.mkdir()
    (linked_marker / OWNED_MARKER).symlink_to(ours / OWNED_MARKER)
    for text in ("{}", "[" * 10000, '{"written_by": "mrrn_keras"}'):
        forged = tmp_path / f"forged{len(text)}"
        forged.mkdir()
        (forged / OWNED_MARKER).write_text(text)
        with pytest.raises(ExistingPathError, match=str(forged)):
            check_replaceable(forged, "frame cache", overwrite=True)
    with pytest.raises(ExistingPathError, match=str(linked_marker)):
        check_replaceable(linked_marker, "frame cache", overwrite=True)
    # Plain files: recorded before they are written; a user's file of the name is refused.
    (ours / "mine.csv").write_text("mine")
    record_files(ours, "frame cache", ["log.csv"])
    (ours / "log.csv").write_text("written")
    record_files(ours, "frame cache", ["log.csv"])  # recorded: may be written again
    with pytest.raises(ExistingPathError, match=re.escape(str(ours / "mine.csv"))):
        record_files(ours, "frame cache", ["log.csv", "mine.csv"])
    assert (ours / "mine.csv").read_text() == "mine"


@pytest.mark.parametrize(
    "name", ["../x.weights.h5", "/abs.weights.h5", "a\\b.weights.h5", "a/b", ".hidden", "..",
             ".", "", "a\x00b", None]
)
def test_unsafe_names_refused(name, home):
    assert not is_safe_name(name)
    with pytest.raises(WeightsError, match="one plain name"):
        weights_cache_path("0" * 64, name)


def test_cache_path_checks_sha256_and_symlinks(home, tmp_path):
    assert is_safe_name("tiny.weights.h5")
    with pytest.raises(WeightsError, match="sha256"):
        weights_cache_path("../" + "0" * 61, "x.weights.h5")
    outside = tmp_path / "outside"
    outside.mkdir()
    (home / "weights").mkdir(parents=True)
    (home / "weights" / ("a" * 64)).symlink_to(outside, target_is_directory=True)
    assert not is_inside(home / "weights", home / "weights" / ("a" * 64) / "x")
    with pytest.raises(WeightsError, match="resolves outside"):
        weights_cache_path("a" * 64, "x.weights.h5")


@pytest.mark.parametrize(
    "segment",
    ["..%2F..%2F..%2F" + ESCAPE, "%2e%2e%2f%2e%2e%2f%2e%2e%2f" + ESCAPE, "ABSOLUTE",
     "..%5C..%5C..%5C" + ESCAPE],
    ids=["relative", "encoded", "absolute", "backslash"],
)
def test_remote_entry_cannot_write_outside_the_cache(home, server, tmp_path, segment):
    outside = tmp_path / "outside"
    outside.mkdir()
    if segment == "ABSOLUTE":
        segment = str(outside / ESCAPE).replace("/", "%2F")
    weights_url = f"{server.url}/w/{segment}"
    folder, _, data = write_tiny_entry(tmp_path / "entries", weights_url=weights_url)
    server.files[f"/w/{segment}"] = data
    load_mrrn(serve_entry(server, folder), progress=False)
    written = [p for p in tmp_path.rglob("*") if p.is_file() and "escaped" in p.name]
    assert all(is_inside(home, p) for p in written)
    assert list(outside.iterdir()) == []
    (cached,) = [p for p in files_under(home / "weights") if p.endswith(".weights.h5")]
    assert sha256_file(home / "weights" / cached) == variant_info(folder).weights.sha256
    assert is_safe_name(pathlib.Path(cached).name)


def test_remote_entry_may_not_point_at_local_files(home, server, tmp_path, tiny):
    folder, _, _ = tiny
    secret = tmp_path / "secret.weights.h5"
    secret.write_bytes((folder / "model.weights.h5").read_bytes())
    remote, _, _ = write_tiny_entry(tmp_path / "entries", weights_url=secret.as_uri())
    with pytest.raises(ZooError, match="`weights.url` must be an http"):
        variant_info(serve_entry(server, remote))
    assert not (home / "text").exists() and not (home / "weights").exists()


# === Remote text ===


def test_remote_text_is_capped_and_not_cached(home, server, tiny):
    url = serve_entry(server, tiny[0])
    server.files["/zoo/mrrn_test.tiny/config.json"] = endless
    with pytest.raises(WeightsError, match=f"larger than {MAX_TEXT_BYTES} bytes"):
        variant_info(url)
    assert files_under(home) == []


def test_remote_entry_checked_before_caching(home, server, tiny):
    url = serve_entry(server, tiny[0])
    data = json.loads((tiny[0] / "config.json").read_text())
    data["params"] = "many"
    server.files["/zoo/mrrn_test.tiny/config.json"] = json.dumps(data).encode()
    with pytest.raises(ZooError, match="`params` must be an integer"):
        variant_info(url)
    server.files["/zoo/mrrn_test.tiny/config.json"] = b"{not json"
    with pytest.raises(ZooError, match="not valid JSON"):
        variant_info(url)
    assert files_under(home) == []


# === Slow servers, locks, killed processes ===


@pytest.fixture
def tiny_limits(monkeypatch):
    """A 0.5 s transfer limit (and no allowance for size)."""
    monkeypatch.setenv("MRRN_DOWNLOAD_TIMEOUT", "0.5")
    monkeypatch.setenv("MRRN_DOWNLOAD_MIN_RATE", "1e12")


def test_dripping_server_hits_the_deadline(home, server, url_entry, tiny, tiny_limits):
    folder, _ = url_entry
    server.files["/w/tiny.weights.h5"] = drip
    with pytest.raises(WeightsError, match="did not finish within") as err:
        load_mrrn(folder)
    assert "/w/tiny.weights.h5" in str(err.value)
    assert files_under(home / "weights") == []
    url = serve_entry(server, tiny[0])
    server.files["/zoo/mrrn_test.tiny/config.json"] = drip
    with pytest.raises(WeightsError, match="did not finish within"):
        variant_info(url)


def test_bad_limit_setting_named(home, url_entry, monkeypatch):
    monkeypatch.setenv("MRRN_DOWNLOAD_MIN_RATE", "fast")
    with pytest.raises(WeightsError, match="MRRN_DOWNLOAD_MIN_RATE='fast'"):
        load_mrrn(url_entry[0])


def test_lock_wait_is_logged_and_gives_up(home, server, url_entry, monkeypatch, caplog):
    folder, _ = url_entry
    monkeypatch.setenv("MRRN_LOCK_TIMEOUT", "0.3")
    info = variant_info(folder)
    target = weights_cache_path(info.weights.sha256, "tiny.weights.h5")
    target.parent.mkdir(parents=True)
    holder = filelock.FileLock(f"{target}.lock")
    with holder, caplog.at_level(logging.WARNING, logger="mrrn_keras.download"):
        with pytest.raises(WeightsError, match="Gave up after 0 s waiting") as err:
            load_mrrn(folder)
    assert f"{target}.lock" in str(err.value) and info.weights.url in str(err.value)
    assert any(f"{target}.lock" in r.getMessage() for r in caplog.records)
    assert server.counts["/w/tiny.weights.h5"] == 0
    load_mrrn(folder)  # the lock is free again
    assert server.counts["/w/tiny.weights.h5"] == 1


def test_stale_part_files_removed(home, url_entry):
    folder, _ = url_entry
    info = variant_info(folder)
    target = weights_cache_path(info.weights.sha256, "tiny.weights.h5")
    target.parent.mkdir(parents=True)
    old = time.time() - 3600
    killed = target.parent / f".{target.name}.999999999.abcd.part"  # no such process
    legacy = target.parent / f".{target.name}.k2j3h4.part"  # before pids were in the name
    running = target.parent / f".{target.name}.{os.getpid()}.efgh.part"
    fresh = target.parent / f".{target.name}.999999999.ijkl.part"
    for part in (killed, legacy, running, fresh):
        part.write_bytes(b"partial")
    for part in (killed, legacy, running):
        os.utime(part, (old, old))
    load_mrrn(folder)
    assert not killed.exists() and not legacy.exists()
    assert running.exists() and fresh.exists()


# === Unwritable caches ===


def test_populated_cache_is_not_rewritten(home, server, tiny, tmp_path):
    folder, _, data = tiny
    url = serve_entry(server, folder)
    server.files["/zoo/mrrn_test.tiny/model.weights.h5"] = data
    load_mrrn(url)
    variant_info(url).read_card()
    before = {p: p.stat() for p in home.rglob("*") if p.is_file()}
    load_mrrn(url)
    variant_info(url).read_card()
    after = {p: p.stat() for p in home.rglob("*") if p.is_file()}
    assert {p: (s.st_ino, s.st_mtime_ns) for p, s in before.items()} == {
        p: (s.st_ino, s.st_mtime_ns) for p, s in after.items()
    }


@pytest.mark.skipif(is_root, reason="root writes through read-only permissions")
def test_read_only_populated_cache_just_works(home, server, tiny):
    folder, _, data = tiny
    url = serve_entry(server, folder)
    server.files["/zoo/mrrn_test.tiny/model.weights.h5"] = data
    load_mrrn(url)
    folders = [home, *(p for p in home.rglob("*") if p.is_dir())]
    for path in folders:
        path.chmod(0o555)
    try:
        load_mrrn(url)
        assert "tiny test entry" in variant_info(url).read_card()
    finally:
        for path in folders:
            path.chmod(0o755)


def _unwritable_home(kind, home):
    if kind == "file":
        home.write_text("not a folder")
    else:
        home.mkdir()
        home.chmod(0o555)


@pytest.mark.parametrize(
    "kind",
    ["file", pytest.param("read-only", marks=pytest.mark.skipif(is_root, reason="root"))],
)
def test_unwritable_home_one_line_error(home, server, tiny, kind, capsys):
    folder, _, data = tiny
    url = serve_entry(server, folder)
    server.files["/zoo/mrrn_test.tiny/model.weights.h5"] = data
    _unwritable_home(kind, home)
    assert cli.main(["predict", "--variant", url, str(folder / "card.md")]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("mrrn ")]
    assert len(errors) == 1 and "Cannot write to the cache folder" in errors[0]
    assert str(home) in errors[0] and "MRRN_HOME" in errors[0]


# === Weights that do not fit ===


def test_weights_that_do_not_fit_say_why(tiny, tmp_path):
    folder, _, _ = tiny
    other = MRRN(len(LABELS), class_names=LABELS, **{**TINY, "sru_units": 16})
    path = tmp_path / "other.weights.h5"
    other.save_weights(str(path))
    with pytest.raises(WeightsError) as err:
        load_mrrn(folder, weights=path)
    message = str(err.value)
    assert re.search(r"Layer '\w+_sru_0' expected 3 variables, but received \d variables", message)
    assert "List of objects" not in message and "\n" not in message
    assert not message.rstrip().endswith(":")


# === One deadline over the whole response; redirects to http(s) only ===


def _drip_bytes(handler, data: bytes, pause_s=0.05, limit=2000):
    """Sends `data` (repeated as the pattern asks) one byte per `pause_s`, until the client leaves."""
    handler.close_connection = True
    try:
        for byte in (data * (limit // len(data) + 1))[:limit]:
            handler.wfile.write(bytes([byte]))
            handler.wfile.flush()
            time.sleep(pause_s)
    except OSError:
        pass


def dripped_headers(handler):
    _drip_bytes(handler, b"HTTP/1.1 200 OK\r\n" + b"X-Slow: " + b"y" * 4000)


def endless_continue(handler):
    _drip_bytes(handler, b"HTTP/1.1 100 Continue\r\n\r\n", pause_s=0.002, limit=1 << 20)


def dripped_chunk_sizes(handler):
    handler.wfile.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    _drip_bytes(handler, b"1\r\n{\r\n")


def endless_trailers(handler):
    handler.wfile.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n")
    _drip_bytes(handler, b"X-Trailer: t\r\n", pause_s=0.01, limit=1 << 20)


@pytest.mark.parametrize(
    "respond", [dripped_headers, endless_continue, dripped_chunk_sizes, endless_trailers]
)
def test_every_part_of_a_response_is_under_the_deadline(home, server, url_entry, tiny, tiny_limits,
                                                         capsys, respond):
    url = serve_entry(server, tiny[0])
    server.files["/zoo/mrrn_test.tiny/config.json"] = respond
    with pytest.raises(WeightsError, match="did not finish within 0.5 s"):
        variant_info(url)
    assert cli.main(["info", url]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "did not finish within" in err
    # Weights too, and the card (read with the entry's config).
    folder, _ = url_entry
    server.files["/w/tiny.weights.h5"] = respond
    with pytest.raises(WeightsError, match="did not finish within") as caught:
        load_mrrn(folder)
    assert "/w/tiny.weights.h5" in str(caught.value)
    assert files_under(home / "weights") == []


def test_redirects_count_against_the_same_deadline(home, server, tiny, tiny_limits):
    def slow_redirect(handler):
        time.sleep(0.3)  # each hop is within the stall timeout; two are past the deadline
        handler.send_response(302)
        handler.send_header("Location", "/zoo/mrrn_test.tiny/config.json")
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    url = serve_entry(server, tiny[0])
    server.files["/zoo/mrrn_test.tiny/config.json"] = slow_redirect
    with pytest.raises(WeightsError, match="did not finish within"):
        variant_info(url)


@pytest.mark.parametrize(
    "location", ["ftp://127.0.0.1:21/config.json", "file:///etc/hostname",
                 "data:application/json,{}", "FTP://127.0.0.1/x"]
)
def test_redirects_off_http_refused(home, server, tiny, url_entry, capsys, location):
    def redirect(handler):
        handler.send_response(302)
        handler.send_header("Location", location)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    url = serve_entry(server, tiny[0])
    server.files["/zoo/mrrn_test.tiny/config.json"] = redirect
    scheme = location.split(":")[0].lower()
    with pytest.raises(WeightsError, match=f"redirected to a {scheme}: URL, refused"):
        variant_info(url)
    assert cli.main(["info", url]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "refused" in err
    server.files["/w/tiny.weights.h5"] = redirect
    with pytest.raises(WeightsError, match="refused"):
        load_mrrn(url_entry[0])
    assert files_under(home / "weights") == []
