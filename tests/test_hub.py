"""Tests for mrrn_keras/hub.py: `hf://owner/repo[@revision]` handles, resolved against a local
server standing in for the Hugging Face hub (`HF_ENDPOINT`)."""

import json
import pathlib

import numpy as np
import pytest

from mrrn_keras import cli
from mrrn_keras.data.video import write_video
from mrrn_keras.download import HUB_ENDPOINT, MAX_TEXT_BYTES, hub_endpoint, weights_cache_path
from mrrn_keras.errors import WeightsError, ZooError
from mrrn_keras.files import is_inside
from mrrn_keras.hub import parse_handle
from mrrn_keras.model import MRRNBackbone, MRRNVideoClassifier
from mrrn_keras.zoo import load_for_inference, load_mrrn, variant_info
from tests.test_download import endless, files_under
from tests.test_zoo import (  # noqa: F401  (fixtures)
    INPUT,
    _frames,
    home,
    server,
    tiny,
)

REPO = "mrrn-test/tiny-motion"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
ENTRY_FILES = ("config.json", "card.md", "model.weights.h5")


def publish(server, folder, *, revision="main", files=ENTRY_FILES, config=None):
    """Serves an entry folder's files as the hub serves a repository at `revision`.

    `config` replaces config.json's content (a dict). Returns the file URL prefix.
    """
    base = f"/{REPO}/resolve/{revision}"
    for name in files:
        server.files[f"{base}/{name}"] = (folder / name).read_bytes()
    if config is not None:
        server.files[f"{base}/config.json"] = json.dumps(config).encode()
    return base


@pytest.fixture
def hub(server, monkeypatch):
    """The test server as the hub."""
    monkeypatch.setenv("HF_ENDPOINT", server.url + "/")
    return server


def _one_line(err) -> str:
    message = str(err.value)
    assert "\n" not in message
    return message


def _written_outside(root, home):
    """Files below `root` but outside the cache."""
    return [p for p in pathlib.Path(root).rglob("*") if p.is_file() and not is_inside(home, p)]


# === Loading ===


def test_load_equals_local_entry_and_reuses_the_cached_weights(home, hub, tiny):
    folder, model, _ = tiny
    base = publish(hub, folder)
    handle = f"hf://{REPO}"
    loaded = load_mrrn(handle, progress=False)
    np.testing.assert_allclose(
        loaded.predict(_frames(), verbose=0), model.predict(_frames(), verbose=0), atol=1e-6
    )
    info = variant_info(handle)
    assert str(info.handle) == f"hf://{REPO}@main" and not info.handle.is_pinned
    assert info.location == f"{hub.url}/{REPO}/resolve/main"  # the endpoint's `/` is dropped
    assert info.name == "mrrn_test.tiny"  # a hub entry's name need not equal the repo's
    assert "tiny test entry" in info.read_card()
    cached = weights_cache_path(info.weights.sha256, "model.weights.h5")
    assert files_under(home / "weights") == [str(cached.relative_to(home / "weights"))]
    assert hub.counts[f"{base}/model.weights.h5"] == 1
    # `main` can move, so online its config.json is asked for again; the weights it
    # names are the cached ones.
    load_mrrn(handle)
    assert hub.counts[f"{base}/config.json"] == 3
    assert hub.counts[f"{base}/model.weights.h5"] == 1


def test_pinned_commit_reaches_its_path_and_is_served_from_the_cache(
    home, hub, tiny, monkeypatch
):
    folder, model, data = tiny
    base = publish(hub, folder, revision=COMMIT)
    # The hub answers LFS files with a redirect to its CDN.
    hub.files[f"{base}/model.weights.h5"] = lambda h: (
        h.send_response(302), h.send_header("Location", "/cdn/blob"), h.end_headers()
    )
    hub.files["/cdn/blob"] = data
    handle = f"hf://{REPO}@{COMMIT}"
    expected = model.predict(_frames(), verbose=0)
    np.testing.assert_allclose(load_mrrn(handle).predict(_frames(), verbose=0), expected, atol=1e-6)
    assert set(hub.counts) == {f"{base}/config.json", f"{base}/model.weights.h5", "/cdn/blob"}
    assert variant_info(handle).handle.is_pinned
    # A commit cannot change: once cached, nothing is asked of the hub, even online.
    hub.httpd.shutdown()
    hub.httpd.server_close()
    np.testing.assert_allclose(load_mrrn(handle).predict(_frames(), verbose=0), expected, atol=1e-6)
    assert sum(hub.counts.values()) == 3
    backbone = MRRNBackbone.from_preset(handle)
    classifier = MRRNVideoClassifier.from_preset(handle, num_classes=2, class_names=["a", "b"])
    assert backbone.streams == model.backbone.streams and classifier.output_shape == (None, 2)
    model_, spec, name, labels = load_for_inference(handle)
    assert spec == {**INPUT, "dtype": "uint8"}
    assert name == "mrrn_test.tiny" and labels == model.class_names
    # The other revisions of the repository were never touched.
    assert sum(hub.counts.values()) == 3


def test_tag_revision_reaches_its_path(home, hub, tiny):
    base = publish(hub, tiny[0], revision="v1.0", files=("config.json",))
    info = variant_info(f"hf://{REPO}@v1.0")
    assert info.location.endswith("/resolve/v1.0") and str(info.handle).endswith("@v1.0")
    assert list(hub.counts) == [f"{base}/config.json"]


# === What a handle or a hub repository cannot make the package do ===


BAD_HANDLES = [
    "hf://a", "hf://a/b/c", "hf://../x", "hf://a/..", "hf://a/b@../../x", "hf://%2e%2e/x",
    "hf://a/b%2F..%2F..", "hf://a/b@%2e%2e%2fx", "hf://a/b@main/../../x", "hf://a/b@",
    "hf://a/b@main\nx", "hf:///a/b", "hf://a/b\\..", "hf:a/b", "hf://a//b", "hf://a/b@.hidden",
    "hf://-a/b", "hf://a/b--c", "hf://a/b@main.lock", "hf://" + "a" * 97 + "/b",
]


def test_bad_handles_refused_before_any_request(home, hub):
    # One server for all (stopping one takes 0.5 s).
    for handle in BAD_HANDLES:
        for load in (variant_info, load_mrrn, MRRNVideoClassifier.from_preset,
                     MRRNBackbone.from_preset, load_for_inference):
            with pytest.raises(ZooError, match="Bad hub handle") as err:
                load(handle)
            assert repr(handle) in _one_line(err), (handle, load)
    assert sum(hub.counts.values()) == 0 and not home.exists()


@pytest.mark.parametrize(
    "file",
    ["../../escaped.weights.h5", "..%2F..%2Fescaped.weights.h5", "/tmp/escaped.weights.h5",
     ".escaped.weights.h5", "a\\..\\escaped.weights.h5", "escaped.h5"],
)
def test_config_cannot_name_a_weights_file_outside(home, hub, tiny, tmp_path, file):
    folder, _, data = tiny
    config = json.loads((folder / "config.json").read_text())
    config["weights"]["file"] = file
    base = publish(hub, folder, config=config)
    hub.files[f"{base}/{file}"] = data
    with pytest.raises(ZooError, match="field `weights.file` must be one plain file name") as err:
        load_mrrn(f"hf://{REPO}")
    assert repr(file) in _one_line(err)
    assert not home.exists()  # refused before anything was cached
    assert _written_outside(tmp_path, home) == []
    assert [p for p in hub.counts if p.endswith(".h5")] == []


@pytest.mark.parametrize("field, value, message", [
    ("sha256", "0" * 64, "does not match its checksum"),
    ("size", 1234, "has the wrong size"),
])
def test_weights_not_matching_the_config_refused(home, hub, tiny, tmp_path, field, value, message):
    folder, _, _ = tiny
    config = json.loads((folder / "config.json").read_text())
    config["weights"][field] = value
    base = publish(hub, folder, config=config)
    with pytest.raises(WeightsError, match=message) as err:
        load_mrrn(f"hf://{REPO}", progress=False)
    assert f"{hub.url}{base}/model.weights.h5" in _one_line(err)
    assert files_under(home / "weights") == []  # no partial file, no wrong file
    assert _written_outside(tmp_path, home) == []


def test_offline_cold_cache_is_a_clean_error(home, hub, tiny, monkeypatch, capsys):
    publish(hub, tiny[0])
    monkeypatch.setenv("MRRN_OFFLINE", "1")
    with pytest.raises(WeightsError, match="MRRN_OFFLINE is set") as err:
        load_mrrn(f"hf://{REPO}")
    assert f"{hub.url}/{REPO}/resolve/main/config.json" in _one_line(err)
    assert cli.main(["info", f"hf://{REPO}"]) == 1
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and captured.err.startswith("mrrn info: MRRN_OFFLINE")
    assert sum(hub.counts.values()) == 0
    # Once fetched, the copies serve offline loads, `main` included.
    monkeypatch.delenv("MRRN_OFFLINE")
    load_mrrn(f"hf://{REPO}")
    monkeypatch.setenv("MRRN_OFFLINE", "1")
    requests = sum(hub.counts.values())
    load_mrrn(f"hf://{REPO}")
    assert sum(hub.counts.values()) == requests


def test_missing_repository_and_bad_endpoint_are_one_line_errors(home, hub, monkeypatch):
    with pytest.raises(WeightsError, match="HTTP 404") as err:
        variant_info("hf://nobody/nothing")
    assert f"{hub.url}/nobody/nothing/resolve/main/config.json" in _one_line(err)
    monkeypatch.setenv("HF_ENDPOINT", "file:///etc")
    with pytest.raises(WeightsError, match="HF_ENDPOINT must be an http"):
        variant_info("hf://nobody/nothing")
    monkeypatch.delenv("HF_ENDPOINT")
    assert hub_endpoint() == HUB_ENDPOINT
    assert parse_handle("hf://a/b").base_url() == f"{HUB_ENDPOINT}/a/b/resolve/main"


def test_card_is_optional_and_capped(home, hub, tiny, capsys):
    base = publish(hub, tiny[0], files=("config.json", "model.weights.h5"))
    info = variant_info(f"hf://{REPO}")
    with pytest.raises(ZooError, match="has no model card"):
        info.read_card()
    assert cli.main(["info", f"hf://{REPO}"]) == 0
    assert "(no model card:" in capsys.readouterr().out
    hub.files[f"{base}/card.md"] = endless
    with pytest.raises(WeightsError, match=f"larger than {MAX_TEXT_BYTES} bytes"):
        info.read_card()
    assert len(files_under(home / "text")) == 1  # config.json's copy; no card


# === The command line ===


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("videos") / "clip.avi"
    rng = np.random.default_rng(0)
    write_video(path, rng.integers(0, 256, (6, 40, 48, 3), dtype=np.uint8), fps=8, codec="mpeg4")
    return path


def test_cli_info_and_predict(home, hub, tiny, clip, capsys):
    folder, _, _ = tiny
    publish(hub, folder, revision=COMMIT)
    handle = f"hf://{REPO}@{COMMIT}"
    assert cli.main(["info", handle]) == 0
    out = capsys.readouterr().out
    assert f"hub:         {handle} (a commit: fixed)" in out and "tiny test entry" in out
    assert cli.main(["predict", str(clip), "--variant", handle, "--json"]) == 0
    remote = json.loads(capsys.readouterr().out)
    assert cli.main(["predict", str(clip), "--variant", str(folder), "--json"]) == 0
    local = json.loads(capsys.readouterr().out)
    assert remote["variant"] == local["variant"] == "mrrn_test.tiny"
    (got,), (want,) = remote["predictions"], local["predictions"]
    assert [row["label"] for row in got["top_k"]] == [row["label"] for row in want["top_k"]]
    np.testing.assert_allclose([row["probability"] for row in got["top_k"]],
                               [row["probability"] for row in want["top_k"]], atol=1e-6)


def test_cli_main_is_marked_movable(home, hub, tiny, capsys):
    publish(hub, tiny[0], files=("config.json",))
    assert cli.main(["info", f"hf://{REPO}"]) == 0
    assert f"hub:         hf://{REPO}@main (a branch or tag: it can move; pin a commit" in (
        capsys.readouterr().out)


@pytest.mark.parametrize("argv", [
    ["info", "hf://a/b@../../x"],
    ["predict", "clip.avi", "--variant", "hf://../x"],
    ["export", "hf://a/b/c", "--out_dir", "unused"],
])
def test_cli_bad_handle_is_one_line(home, hub, capsys, argv):
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    (line,) = [line for line in err.splitlines() if line.startswith("mrrn ")]
    assert line.startswith(f"mrrn {argv[0]}: Bad hub handle")
    assert "Traceback" not in err and sum(hub.counts.values()) == 0


def test_finetune_names_its_entry_after_the_hub_repository():
    from mrrn_keras.finetune import _variant_stem

    # The default entry name is `<architecture>.<run folder>`, read without a request.
    assert _variant_stem(f"hf://owner/mrrn_tiny.motion@{COMMIT}") == "mrrn_tiny.motion"
    assert _variant_stem("http://host/zoo/mrrn_tiny.motion") == "mrrn_tiny.motion"
    with pytest.raises(ZooError, match="Bad hub handle"):
        _variant_stem("hf://../x")


# === A moving revision resolved to one commit; private repositories (HF_TOKEN) ===


def _serve(body: bytes, *, headers=(), seen=None):
    """A response writer for the test server: `body` with `headers`; appends the request's
    Authorization header (or None) to `seen`."""

    def respond(handler):
        if seen is not None:
            seen.append(handler.headers.get("Authorization"))
        handler.send_response(200)
        for name, value in headers:
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    return respond


def _private(body: bytes, token: str, seen: list):
    """Like `_serve`, but 401 unless the request carries `Bearer <token>`."""
    serve = _serve(body, seen=seen)

    def respond(handler):
        if handler.headers.get("Authorization") != f"Bearer {token}":
            seen.append(handler.headers.get("Authorization"))
            handler.send_error(401, "Unauthorized")
            return
        serve(handler)

    return respond


def test_branch_is_read_at_the_commit_the_hub_resolved_it_to(home, hub, tiny, capsys):
    folder, model, _ = tiny
    base = publish(hub, folder, revision=COMMIT)
    # `main` answers config.json with the commit it points to; its weights and card are
    # not served at `main` at all, so a load must read them at that commit.
    hub.files[f"/{REPO}/resolve/main/config.json"] = _serve(
        (folder / "config.json").read_bytes(), headers=[("X-Repo-Commit", COMMIT.upper())]
    )
    handle = f"hf://{REPO}"
    info = variant_info(handle)
    assert info.commit == COMMIT and not info.handle.is_pinned
    assert info.location == f"{hub.url}{base}"
    np.testing.assert_allclose(
        load_mrrn(handle).predict(_frames(), verbose=0), model.predict(_frames(), verbose=0),
        atol=1e-6,
    )
    assert hub.counts[f"{base}/model.weights.h5"] == 1
    assert cli.main(["info", handle]) == 0
    out = capsys.readouterr().out
    assert f"hf://{REPO}@main (a branch or tag, now at commit {COMMIT}; it can move: pin it as " \
           f"hf://{REPO}@{COMMIT})" in out
    assert "tiny test entry" in out  # the card, read at the commit
    # A pinned handle's commit is its own; a header that is not a commit is ignored.
    assert variant_info(f"hf://{REPO}@{COMMIT}").commit == COMMIT
    hub.files[f"/{REPO}/resolve/main/config.json"] = _serve(
        (folder / "config.json").read_bytes(), headers=[("X-Repo-Commit", "../../x")]
    )
    info = variant_info(handle)
    assert info.commit is None and info.location.endswith("/resolve/main")


def test_private_repository_needs_hf_token_and_the_token_stays_on_the_hub(
    home, hub, tiny, monkeypatch, capsys
):
    folder, model, data = tiny
    token = "hf_test_0123456789abcdef"
    base = f"/{REPO}/resolve/{COMMIT}"
    seen = {"config": [], "card": [], "weights": [], "cdn": []}
    hub.files[f"{base}/config.json"] = _private((folder / "config.json").read_bytes(), token,
                                                seen["config"])
    hub.files[f"{base}/card.md"] = _private((folder / "card.md").read_bytes(), token, seen["card"])
    # Weights go to "the CDN": the same server under another origin (localhost, not
    # 127.0.0.1), which must not receive the token.
    cdn = hub.url.replace("127.0.0.1", "localhost") + "/cdn/blob"
    hub.files[f"{base}/model.weights.h5"] = lambda h: (
        seen["weights"].append(h.headers.get("Authorization")),
        h.send_response(302), h.send_header("Location", cdn), h.end_headers(),
    )
    hub.files["/cdn/blob"] = _serve(data, seen=seen["cdn"])
    handle = f"hf://{REPO}@{COMMIT}"

    monkeypatch.delenv("HF_TOKEN", raising=False)
    assert cli.main(["info", handle]) == 1
    err = capsys.readouterr().err
    (line,) = [line for line in err.splitlines() if line.startswith("mrrn ")]
    assert "HTTP 401" in line and "set HF_TOKEN" in line and "Traceback" not in err

    monkeypatch.setenv("HF_TOKEN", "hf_wrong_token")
    with pytest.raises(WeightsError, match="HF_TOKEN was sent; that token may not read") as err:
        variant_info(handle)
    assert "hf_wrong_token" not in str(err.value)

    monkeypatch.setenv("HF_TOKEN", f"  {token}\n")
    np.testing.assert_allclose(
        load_mrrn(handle).predict(_frames(), verbose=0), model.predict(_frames(), verbose=0),
        atol=1e-6,
    )
    bearer = f"Bearer {token}"
    assert seen["config"][-1] == bearer and seen["weights"] == [bearer]
    assert seen["cdn"] == [None]  # the redirect to another origin dropped the token


def test_hf_token_is_never_sent_elsewhere_or_in_the_clear(home, hub, monkeypatch, caplog):
    from mrrn_keras import download

    monkeypatch.setenv("HF_TOKEN", "hf_abc")
    assert download._auth_header(f"{hub.url}/{REPO}/resolve/main/config.json") == "Bearer hf_abc"
    # Another port, another host, another scheme: not the endpoint.
    other_port = hub.url.rsplit(":", 1)[0] + ":1"
    for url in (f"{other_port}/x", "https://example.com/x", hub.url.replace("http:", "https:"),
                "file:///etc/passwd"):
        assert download._auth_header(url) is None, url
    # Plain http to a host that is not loopback: not sent, and said so (without the token).
    monkeypatch.setenv("HF_ENDPOINT", "http://hub.example")
    with caplog.at_level("WARNING", logger="mrrn_keras.download"):
        assert download._auth_header("http://hub.example/a/b/resolve/main/config.json") is None
    assert "not sent" in caplog.text and "hf_abc" not in caplog.text
    monkeypatch.setenv("HF_ENDPOINT", "https://hub.example")
    assert download._auth_header("https://hub.example/a/b") == "Bearer hf_abc"
    # A token that could inject a header is refused, without echoing it.
    monkeypatch.setenv("HF_TOKEN", "hf_abc\r\nX-Evil: 1")
    with pytest.raises(WeightsError, match="HF_TOKEN must be one word") as err:
        download._auth_header("https://hub.example/a/b")
    assert "Evil" not in str(err.value) and "\n" not in str(err.value)
