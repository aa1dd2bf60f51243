"""Hugging Face hub handles: `hf://owner/repo[@revision]` names a zoo entry
folder published as a hub repository.

A handle is untrusted input and is checked in full before any request:
`owner` and `repo` are hub names (letters, digits and `._-`, starting and
ending with a letter or digit, no `--` or `..`, at most 96 characters), and
`revision` (default `main`) is a branch or tag name of letters, digits and
`._-` (no `..`, not ending in `.` or `.lock`, at most 100 characters) or a
40-hex commit. Nothing is percent-decoded, so an encoded `/` or `..` is
refused like the plain one. The entry's files are then read over plain
HTTPS from `{hub_endpoint()}/{owner}/{repo}/resolve/{revision}/{file}`
(`HF_ENDPOINT`, default `https://huggingface.co`), through the verified
cache of `mrrn_keras.download`; `HF_TOKEN`, where set, is sent to the
endpoint alone, so private and gated repositories can be read too.

A branch or tag can move; a commit cannot. Only a 40-hex commit makes a
handle name one fixed entry, which is why its cached config.json is reused
without asking the hub again (`HubHandle.is_pinned`). For a branch or tag,
the commit the hub resolved it to (its `X-Repo-Commit` header) is kept
(`VariantInfo.commit`, shown by `mrrn info`) and the card and weights are read
from that commit, so one load never mixes two commits' files.
"""

from __future__ import annotations

import dataclasses
import re

from mrrn_keras.download import hub_endpoint
from mrrn_keras.errors import ZooError

HUB_PREFIX = "hf://"
DEFAULT_REVISION = "main"
_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?")
_REVISION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_COMMIT = re.compile(r"[0-9a-f]{40}")
_EXPECTED = (
    "Expected hf://owner/repo or hf://owner/repo@revision, with a branch, tag or 40-hex commit "
    "as the revision (default main)"
)


@dataclasses.dataclass(frozen=True)
class HubHandle:
    """A checked `hf://owner/repo@revision` handle (build it with `parse_handle`).

    Attributes:
        owner: str. The user or organisation.
        repo: str. The repository's name.
        revision: str. A branch, tag or 40-hex commit.
    """

    owner: str
    repo: str
    revision: str = DEFAULT_REVISION

    @property
    def is_pinned(self) -> bool:
        """Whether the revision is a 40-hex commit, so the handle names fixed files."""
        return is_commit(self.revision)

    def at(self, revision: str) -> "HubHandle":
        """The same repository at another revision (e.g. the commit a branch resolved to)."""
        return dataclasses.replace(self, revision=revision)

    def base_url(self) -> str:
        """The URL the entry's files are under: `{endpoint}/{owner}/{repo}/resolve/{revision}`.

        Raises:
            WeightsError: `HF_ENDPOINT` is not an http(s) URL.
        """
        return f"{hub_endpoint()}/{self.owner}/{self.repo}/resolve/{self.revision}"

    def __str__(self) -> str:
        return f"{HUB_PREFIX}{self.owner}/{self.repo}@{self.revision}"


def is_commit(value) -> bool:
    """Whether `value` is a 40-hex (lower-case) commit id.

    Example:

    >>> is_commit("0" * 40), is_commit("main")
    (True, False)
    """
    return isinstance(value, str) and _COMMIT.fullmatch(value) is not None


def is_hub_handle(value) -> bool:
    """Whether `value` is meant as a hub handle: a str starting with `hf:` (any case).

    Such a value is never read as a name or a folder: `parse_handle` accepts
    it or says what is wrong with it.
    """
    return isinstance(value, str) and value[:3].lower() == "hf:"


def parse_handle(value: str) -> HubHandle:
    """Checks a hub handle and splits it into its parts.

    Args:
        value: str. `hf://owner/repo` or `hf://owner/repo@revision`.

    Returns:
        The `HubHandle`; the revision defaults to `main`.

    Raises:
        ZooError: one line naming the handle and the part that is wrong.

    Example:

    >>> parse_handle("hf://mrrn/mrrn_tiny.motion")
    HubHandle(owner='mrrn', repo='mrrn_tiny.motion', revision='main')
    >>> str(parse_handle("hf://mrrn/tiny@" + "0" * 40)) == "hf://mrrn/tiny@" + "0" * 40
    True
    """
    if not isinstance(value, str) or not value.startswith(HUB_PREFIX):
        _fail(value, f"it must start with {HUB_PREFIX}")
    repo_id, at, revision = value[len(HUB_PREFIX):].partition("@")
    parts = repo_id.split("/")
    if len(parts) != 2:
        _fail(value, f"{repo_id!r} must be exactly owner/repo")
    for part, role in zip(parts, ("owner", "repo")):
        if not (_NAME.fullmatch(part) and "--" not in part and ".." not in part):
            _fail(
                value,
                f"{role} {part!r} is not a hub name (letters, digits and ._-, starting and ending "
                "with a letter or digit, no -- or .., at most 96 characters)",
            )
    if at and not _is_revision(revision):
        _fail(
            value,
            f"revision {revision!r} is not a branch or tag name (letters, digits and ._-, no .., "
            "at most 100 characters) or a 40-hex commit",
        )
    return HubHandle(parts[0], parts[1], revision if at else DEFAULT_REVISION)


def _is_revision(revision: str) -> bool:
    return (
        _REVISION.fullmatch(revision) is not None
        and ".." not in revision
        and not revision.endswith((".", ".lock"))
    )


def _fail(value, reason: str):
    raise ZooError(f"Bad hub handle {value!r}: {reason}. {_EXPECTED}.")
