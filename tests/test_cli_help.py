"""Every command of the `safetypairs` command line builds, has a handler and shows its
defaults in --help (without running anything)."""

from __future__ import annotations

import argparse

import pytest

from safetypairs.cli import build_parser, main


def commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """(command words, parser) for every command that runs, e.g. (("judge", "rate"), p)."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path, parser
        return
    for name, child in subs[0].choices.items():
        yield from commands(child, (*path, name))


COMMANDS = dict(commands(build_parser()))


def test_every_command_has_one_handler_style() -> None:
    assert len(COMMANDS) >= 24, sorted(COMMANDS)
    for words, parser in COMMANDS.items():
        handler = parser.get_default("func")
        assert callable(handler) and handler.__name__.startswith("cmd_"), words


@pytest.mark.parametrize("words", sorted(COMMANDS), ids=" ".join)
def test_help_shows_defaults_worth_showing(words: tuple[str, ...], capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([*words, "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert "(default: None)" not in text and "(default: False)" not in text
    assert "(default: )" not in text


def test_defaults_in_help() -> None:
    def help_of(*words: str) -> str:
        return " ".join(COMMANDS[words].format_help().split())

    assert "deadline per call, seconds (default: 30.0)" in help_of("screen")
    assert "uncertain band LOW,HIGH on guard scores (default: 0.2,0.8)" in help_of("screen")
    assert "how many proposals (default: 4)" in help_of("judge", "propose")
    assert "(default: efficientnet-lite0)" in help_of("confound-check")
    # The serve flags name their default themselves (None means: from the environment).
    assert "(env SAFETYPAIRS_MAX_BATCH_SIZE, default 16)" in help_of("serve", "guard")
    assert "HTTP port (default: 3001)" in help_of("serve", "judge")
