"""How the `mrrn` subcommands spell and describe their options.

Shared by `mrrn_keras.cli` and `mrrn_keras.cli_training`, so every
subcommand's `--help` shows defaults and choices the same way, and the
spellings of earlier releases (`--format`, `--out`, `--top-k`, absl's
`--noflag`) keep working without being shown.
"""

from __future__ import annotations

import argparse


class HelpFormatter(argparse.HelpFormatter):
    """Shows every option's default (choices show in its metavar)."""

    def _get_help_string(self, action):
        help_text = action.help or ""
        if (
            "%(default)" not in help_text
            and action.option_strings
            and action.default is not argparse.SUPPRESS
            and action.nargs != 0
        ):
            help_text += " (default: %(default)s)"
        return help_text


# Earlier spellings -> the one vocabulary (underscores, `--out_dir`, `--data_format`).
OLD_SPELLINGS = {"--format": "--data_format", "--out": "--out_dir", "--top-k": "--top_k"}


def option_strings(parser: argparse.ArgumentParser, command: str | None = None) -> set[str]:
    """Every option string of `parser` and of its subcommands' parsers.

    Args:
        parser: the `mrrn` parser (or a subcommand's).
        command: only this subcommand's options (with the top-level ones);
            None: every subcommand's.
    """
    found = set()
    for action in parser._actions:
        found.update(action.option_strings)
        subs = action.choices if isinstance(action.choices, dict) else {}
        for name, sub in subs.items():
            if command is None or name == command:
                found |= option_strings(sub)
    return found


def canonical_argv(argv: list[str], known: set[str]) -> list[str]:
    """`argv` with earlier option spellings rewritten to the current ones.

    Args:
        argv: the arguments, without the program name.
        known: the option strings the parser knows (`option_strings`).

    Returns:
        The rewritten arguments; values and everything after `--` are kept.

    Example:

    >>> canonical_argv(["predict", "--top-k=3", "--nopretrained", "--out", "x"],
    ...                {"--top_k", "--no-pretrained", "--out_dir"})
    ['predict', '--top_k=3', '--no-pretrained', '--out_dir', 'x']
    """
    result = []
    for i, token in enumerate(argv):
        if token == "--":
            return result + argv[i:]
        name, eq, value = token.partition("=")
        if name in known:  # a current option of this command (`export --format`)
            result.append(token)
            continue
        new = OLD_SPELLINGS.get(name)
        if new is None and name.startswith("--no") and f"--no-{name[4:]}" in known:
            new = f"--no-{name[4:]}"
        result.append(new + eq + value if new in known else token)
    return result
