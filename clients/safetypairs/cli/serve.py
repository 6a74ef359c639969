"""Service commands, run in this process (they need the `serve` and `models` extras): `serve
SERVICE` (HTTP and gRPC in one process tree, see safetypairs.serving.serve) and
`build-default-guard|judge|editor` (build an embedded default model ahead of its first use)."""

from __future__ import annotations

import argparse
import dataclasses
import typing
from collections.abc import Callable

from safetypairs.cli.common import Subcommands

BUILD_HELP = {
    "guard": "build the embedded default guard model",
    "judge": "build the embedded default (tiny) judge",
    "edit": "build the embedded default (tiny) editor",
}


def register(sub: Subcommands) -> None:
    # The serve flags mirror the settings dataclasses; serve.py and settings.py import only
    # the standard library and the contract, so a client-only install still builds them.
    from safetypairs.serving.default_models import BUILD_COMMANDS
    from safetypairs.serving.serve import SERVICES

    p = sub.add_parser("serve", help="start a model service (HTTP and gRPC in one process)")
    services = p.add_subparsers(dest="service", required=True)
    for name, spec in SERVICES.items():
        s = services.add_parser(name, help=f"the {name} service")
        s.add_argument("--host", default="0.0.0.0", help="HTTP bind address")
        s.add_argument("--http-port", type=int, default=spec.http_port, help="HTTP port")
        _add_setting_flags(s, spec.settings())
        s.set_defaults(func=cmd_serve)

    for service, command in BUILD_COMMANDS.items():
        p = sub.add_parser(command, help=BUILD_HELP[service])
        p.add_argument("--home", default=None, help="cache folder (env SAFETYPAIRS_HOME)")
        p.add_argument("--force", action="store_true", help="rebuild even if present")
        p.set_defaults(func=cmd_build_default, service=service)


def cmd_serve(args: argparse.Namespace) -> int:
    from safetypairs.serving.serve import serve

    serve(args.service, args.host, args.http_port, vars(args))  # until stopped; exits


def cmd_build_default(args: argparse.Namespace) -> int:
    """Build (or with --force rebuild) the service's embedded default; print its reference."""
    from safetypairs.serving.default_models import default_model
    from safetypairs.serving.serve import SERVICES

    home = args.home or SERVICES[args.service].settings().from_env().home_dir()
    print(default_model(args.service).ensure(home, rebuild=args.force))
    return 0


def _add_setting_flags(parser: argparse.ArgumentParser, settings_class: type) -> None:
    """One flag per service setting, same name as its SAFETYPAIRS_* env var."""
    from safetypairs.serving.settings import env_name, flag_name

    hints = typing.get_type_hints(settings_class)
    for f in dataclasses.fields(settings_class):
        parser.add_argument(
            flag_name(f.name),
            dest=f.name,
            type=_setting_type(hints[f.name], flag_name(f.name)),
            default=None,
            help=f"{f.metadata.get('help', '')} (env {env_name(f.name)}, default {f.default!r})",
        )


def _setting_type(kind: type, flag: str) -> Callable[[str], object]:
    """Parse a flag's value as its setting's environment variable is parsed (so `--auth-exempt-
    probes maybe` is a usage error naming the flag, like the variable's bad value)."""
    from safetypairs.serving.settings import SettingsError, parse_setting

    def parse(raw: str) -> object:
        try:
            return parse_setting(raw, kind, flag)
        except SettingsError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = kind.__name__  # argparse names the type in its message
    return parse
