"""What the command modules share: the parser and help style, service addresses and connection
flags, image path expansion and the small output helpers."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import grpc

from safetypairs.client.channel import tls_credentials
from safetypairs.contract.errors import SafetyPairsError
from safetypairs.contract.policy import Policy, load_policy
from safetypairs.contract.results import Rated, ScreenResult

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff"}

# Each service's address: its environment variable and the port its `serve` command uses.
TARGETS = {
    "guard": ("SAFETYPAIRS_GUARD_TARGET", "localhost:50051"),
    "judge": ("SAFETYPAIRS_JUDGE_TARGET", "localhost:50052"),
    "edit": ("SAFETYPAIRS_EDIT_TARGET", "localhost:50053"),
}

Client = TypeVar("Client")
R = TypeVar("R", ScreenResult, Rated)
Subcommands = argparse._SubParsersAction  # what add_subparsers returns (a private name)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Adds "(default: ...)" where a default says something: not on switches, on flags that
    are unset or empty by default, or on help that already names its default."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if default is None or default is False or default in ("", []) or "default" in text:
            return text
        return super()._get_help_string(action) or text


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose subcommands (made with its own class) share HelpFormatter."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)
        # Anywhere on the line (before or after the command); SUPPRESS: a subcommand's
        # parser leaves the value the main parser found alone.
        self.add_argument(
            "--debug",
            action="store_true",
            default=argparse.SUPPRESS,
            help="on an error, also print the traceback",
        )

    def error(self, message: str) -> NoReturn:
        """A bad command line is one line, like every other error (cli.errors), exit 2."""
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def target(service: str) -> str:
    """The service's address from its environment variable, else the local default."""
    env, default = TARGETS[service]
    return os.environ.get(env, default)


def add_target(p: argparse.ArgumentParser, service: str, help: str = "") -> None:
    env, _ = TARGETS[service]
    p.add_argument(
        "--target", default=target(service), help=help or f"{service} gRPC address (env {env})"
    )


# The connection flags: (flag, its environment variable, help).
CONNECTION_FLAGS = (
    ("--token-file", "SAFETYPAIRS_TOKEN_FILE", "file holding the bearer token"),
    ("--tls-ca", "SAFETYPAIRS_TLS_CA", "PEM CA of the server, for TLS"),
    ("--tls-cert", "SAFETYPAIRS_TLS_CLIENT_CERT", "PEM client certificate, for mutual TLS"),
    ("--tls-key", "SAFETYPAIRS_TLS_CLIENT_KEY", "PEM client key, for mutual TLS"),
)


def add_connection_flags(p: argparse.ArgumentParser) -> None:
    for flag, env, help in CONNECTION_FLAGS:
        p.add_argument(flag, default=os.environ.get(env), help=f"{help} (env {env})")


def add_client_command(
    sub: Subcommands, name: str, help: str, service: str, timeout: float, target_help: str = ""
) -> argparse.ArgumentParser:
    """A command that calls `service`: its address, a deadline and the connection flags."""
    p = sub.add_parser(name, help=help)
    add_target(p, service, target_help)
    p.add_argument("--timeout", type=float, default=timeout, help="deadline per call, seconds")
    add_connection_flags(p)
    return p


def old_spelling(base: type[argparse.Action], new: str) -> type[argparse.Action]:
    """An argparse action for a flag's old spelling, kept for one release: add it with
    help=argparse.SUPPRESS; using it works and says the new spelling on stderr."""

    class OldSpelling(base):  # type: ignore[misc, valid-type]
        def __call__(self, parser: Any, namespace: Any, values: Any, option: Any = None) -> None:
            print(f"note: {option} is now {new}; {option} goes in a later release", file=sys.stderr)
            super().__call__(parser, namespace, values, option)

    return OldSpelling


def add_pairs_flag(p: argparse.ArgumentParser, what: str = "", required: bool = False) -> None:
    """--pairs, the same everywhere: a pair dataset folder or its pairs.jsonl, repeatable."""
    p.add_argument(
        "--pairs",
        action="append",
        default=None if required else [],
        required=required,
        help=f"{what}a pair dataset folder (or its pairs.jsonl) or store URL; repeat for more",
    )


def add_progress_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress on stderr (a bar on a terminal, a line every few seconds elsewhere)",
    )
    p.add_argument(
        "--quiet",
        dest="no_progress",
        action=old_spelling(argparse._StoreTrueAction, "--no-progress"),
        help=argparse.SUPPRESS,
    )


def add_max_backoff(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--max-backoff",
        type=float,
        default=120.0,
        help="seconds an overloaded or absent (restarting) service is waited for, per call",
    )


def credentials(args: argparse.Namespace) -> grpc.ChannelCredentials | None:
    """TLS credentials from the connection flags; None for a plaintext channel."""
    if args.tls_ca or args.tls_cert:
        return tls_credentials(args.tls_ca, args.tls_cert, args.tls_key)
    return None


def read_token(args: argparse.Namespace) -> str | None:
    return Path(args.token_file).read_text().strip() if args.token_file else None


def connect(
    client_class: type[Client], args: argparse.Namespace, at: str | None = None, **kw: Any
) -> Client:
    """A client of `client_class` for `at` (default: --target) with the connection flags."""
    return client_class(  # type: ignore[call-arg]
        at or args.target, token=read_token(args), credentials=credentials(args), **kw
    )


def judge_policy(args: argparse.Namespace) -> Policy | str | None:
    """--policy (a YAML file) or --policy-name (one the judge knows); None: the judge's own."""
    if args.policy:
        return load_policy(args.policy)
    return args.policy_name or None


def image_paths(paths: Sequence[str]) -> Iterator[Path]:
    """Files as given; folders searched for files with an image suffix."""
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        else:
            yield path


@contextmanager
def local_pair_datasets(args: argparse.Namespace) -> Iterator[None]:
    """`--pairs` entries that are object store URLs (s3://bucket/dataset) made local for the
    block: each dataset's committed units and images copied (merged) into a temporary folder,
    and the entry replaced by its pairs.jsonl there."""
    from safetypairs.pairs.merge import merge_datasets
    from safetypairs.pairs.store import local_path

    with tempfile.TemporaryDirectory(prefix="safetypairs-pairs-") as work:
        local = []
        for n, entry in enumerate(args.pairs):
            if local_path(entry) is None:
                copy = Path(work) / str(n)
                merge_datasets(copy, [entry])
                entry = str(copy / "pairs.jsonl")
            local.append(entry)
        given, args.pairs = args.pairs, local
        try:
            yield
        finally:
            args.pairs = given


def chunks(items: list[Path], size: int) -> Iterator[list[Path]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def codes(text: str) -> list[str]:
    """A comma-separated list (category codes, directions), blanks dropped."""
    return [c.strip() for c in text.split(",") if c.strip()]


def usage_error(message: str) -> int:
    """Say what is wrong with the command line; exit status 2."""
    print(f"error: {message}", file=sys.stderr)
    return 2


def error_json(error: SafetyPairsError | None) -> dict[str, str] | None:
    return {"kind": error.kind, "message": error.message} if error else None


def result_json(result: ScreenResult | Rated, **extra: Any) -> dict[str, Any]:
    """One image's outcome of a batch (guard or judge) for --json."""
    verdict = dataclasses.asdict(result.verdict) if result.verdict else None
    return {
        "image": result.image_id,
        **extra,
        "verdict": verdict,
        "error": error_json(result.error),
    }


def print_error(image: str, error: SafetyPairsError) -> None:
    print(f"{image}\n  ERROR {error.kind}: {error.message}\n")


def verdicts(results: Sequence[R]) -> Iterator[R]:
    """The results that hold a verdict; the others' errors are printed as they go by."""
    for r in results:
        if r.error is not None:
            print_error(r.image_id, r.error)
        else:
            assert r.verdict is not None
            yield r


def print_json(value: Any) -> None:
    json.dump(value, sys.stdout, indent=2)
    print()
