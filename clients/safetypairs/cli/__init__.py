"""The `safetypairs` command line.

    safetypairs serve guard [--http-port 3000] [--grpc-port 50051] [--guard-model REF] ...
    safetypairs screen PATH... [--target HOST:PORT] [--json]
    safetypairs categories | model-info [--target HOST:PORT]
    safetypairs build-default-guard [--home DIR]
    safetypairs serve judge [--http-port 3001] [--grpc-port 50052] [--judge-model REF] ...
    safetypairs judge rate PATH... [--policy FILE] [--rationale] [--json]
    safetypairs judge propose PATH --direction to_unsafe --category O6 [--count 4]
    safetypairs serve edit [--http-port 3002] [--grpc-port 50053] [--edit-model REF] ...
    safetypairs edit IMAGE --instruction TEXT --out FILE [--seed N] [--region x,y,w,h]
    safetypairs build-default-editor [--home DIR]
    safetypairs evaluate --data PATH [--pairs PATH] (--guard-model REF | --guard-target HOST:PORT |
                         --judge-target HOST:PORT) --out DIR
    safetypairs sample-efficiency --data PATH --pairs PATH --sizes 8,16,32 --out DIR
    safetypairs confound-check --pairs PATH --out DIR
    safetypairs report DATASET [--open]
    safetypairs export DATASET --to parquet|hf --out PATH [--include-rejected]
                       [--reviewed accepted|any]
    safetypairs import SRC --out DATASET
    safetypairs review DATASET [--reviewer NAME] [--assign K]
    safetypairs review-stats DATASET [--json]

One module per room registers its commands (guard, judge, edit, pairs, review, evaluation,
training, serve); each command is a `cmd_*(args) -> int` set as its parser's `func`. The modules
import only the contract, the SDK and each other at module level; serving, model, training and
evaluation code is imported inside the functions that run a command (and, for the `serve`
flags, register it), so client commands need only the SDK.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from safetypairs.cli import edit, evaluation, guard, judge, pairs, review, serve, training
from safetypairs.cli.common import Parser
from safetypairs.cli.errors import run
from safetypairs.cli.progress import shown

ROOMS = (guard, judge, edit, pairs, review, evaluation, training, serve)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="safetypairs", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for room in ROOMS:
        room.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; errors are one line on stderr and an exit status (cli.errors)."""
    args = build_parser().parse_args(argv)
    with shown(not getattr(args, "no_progress", False)):
        return run(args, getattr(args, "debug", False))
