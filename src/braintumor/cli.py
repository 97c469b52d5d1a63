"""The ``braintumor`` command. Each sub-command lives in its own module of :mod:`braintumor.commands`
with ``configure`` and ``run``; this file only wires them, so that ``braintumor --help`` imports
nothing heavy, and turns the errors meant for a person into a message and exit status 2."""

from __future__ import annotations

import argparse
import importlib
import sys

from . import __version__
from .commands import COMMANDS, NEEDS_TRAINING
from .errors import UsageError  # noqa: F401 (re-exported: braintumor.cli.UsageError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="braintumor", description=(
        "Brain MRI tumour classifier (glioma, meningioma, notumor, pituitary) with Grad-CAM. "
        "For research and teaching, not for diagnosis."))
    parser.add_argument("--version", action="version", version=f"braintumor {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(_command=name, _module=module)
        try:
            importlib.import_module(module).configure(p)
        except ImportError as exc:  # an optional part that is not installed
            p.set_defaults(_missing=str(exc))
    return parser


def known_errors() -> tuple[type[BaseException], ...]:
    """The errors whose message is meant for a person: one line on stderr and exit status 2. An
    OSError is the machine's answer about a path the user gave (missing, not a folder, not
    writable, a full disk). Anything else is a bug, and its traceback is shown."""
    from .errors import ToolError

    return (ToolError, OSError)


def require_training_install() -> None:
    """A command that trains, fits or converts needs PyTorch: in the light install, one line that
    names the install that has it (NeedsTrainingInstall, exit status 2). PyTorch is looked for,
    not imported."""
    import importlib.util

    try:
        found = importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        from .errors import NeedsTrainingInstall

        raise NeedsTrainingInstall("this command")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "_missing", None):
        print(f"braintumor {args._command}: unavailable ({args._missing})", file=sys.stderr)
        return 2
    try:
        if args._command in NEEDS_TRAINING:
            require_training_install()
        return importlib.import_module(args._module).run(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except known_errors() as exc:
        print(f"braintumor {args._command}: error: {exc}", file=sys.stderr)
        return getattr(exc, "exit_code", 2)


def entry() -> None:
    sys.exit(main())
