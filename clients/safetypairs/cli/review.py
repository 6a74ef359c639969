"""Human review of pair datasets: `review` (a local web page) and `review-stats`.

safetypairs review DATASET [--reviewer NAME] [--assign K] [--host 127.0.0.1] [--port 8765]
safetypairs review-stats DATASET [--json]
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys

from safetypairs.cli.common import Subcommands
from safetypairs.contract.errors import InvalidInput
from safetypairs.contract.review_record import check_reviewer

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8765


def local_folder(dataset: str) -> None:
    """Reviews are appended to a log in the dataset folder: object stores cannot append."""
    from safetypairs.pairs.store import local_path

    if local_path(dataset) is None:
        raise InvalidInput(
            f"{dataset}: review works on dataset folders (its log is appended); copy the "
            f"dataset to one first: safetypairs merge-datasets FOLDER {dataset}"
        )


def cmd_review(args: argparse.Namespace) -> int:
    from safetypairs.review.server import make_server

    local_folder(args.dataset)
    reviewer = check_reviewer(args.reviewer or getpass.getuser())
    server = make_server(args.dataset, reviewer, args.assign, args.host, args.port)
    print(f"reviewing {args.dataset} as {reviewer}: open {server.url}", flush=True)
    print("Ctrl-C stops; every decision is already on disk.", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def cmd_review_stats(args: argparse.Namespace) -> int:
    from safetypairs.review.stats import format_stats, write_stats

    local_folder(args.dataset)
    stats, json_path, plot_path = write_stats(args.dataset)
    print(json.dumps(stats, indent=2) if args.json else format_stats(stats))
    print(f"wrote {json_path} and {plot_path}", file=sys.stderr)
    return 0


def register(subparsers: Subcommands) -> None:
    p = subparsers.add_parser(
        "review", help="review a dataset's pairs in a local web page (decisions: reviews.jsonl)"
    )
    p.add_argument("dataset", help="pair dataset folder")
    p.add_argument("--reviewer", help="your name in the review log (default: the login name)")
    p.add_argument(
        "--assign",
        type=int,
        metavar="K",
        help="give each pair to K reviewers: a pair leaves the queue once K people decided it",
    )
    p.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help="address to bind; anything but loopback puts a token in the URL",
    )
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (0: any free one)")
    p.set_defaults(func=cmd_review)

    p = subparsers.add_parser(
        "review-stats",
        help="acceptance, agreement and judge-vs-people figures of a dataset's reviews",
    )
    p.add_argument("dataset", help="pair dataset folder")
    p.add_argument("--json", action="store_true", help="print the JSON instead of the summary")
    p.set_defaults(func=cmd_review_stats)
