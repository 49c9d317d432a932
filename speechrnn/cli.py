"""The ``speechrnn`` command line: a thin argparse layer over library functions.

Each subcommand lives in its own module, which provides ``add_arguments(parser)`` and
``run_from_args(args) -> int``; the real work is a keyword-only function in that module that
tests call without argv. Modules are imported only when their command (or ``--help``) needs them,
and keep heavy imports (torch, librosa) inside functions, so start-up stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Mapping, Sequence
from types import MappingProxyType

from speechrnn import __version__

#: subcommand name -> (module, one-line help); read-only
COMMANDS: Mapping[str, tuple[str, str]] = MappingProxyType({
    "classify": ("speechrnn.classify", "classify audio files and folders (clips and long recordings)"),
    "listen": ("speechrnn.listen", "recognize commands live from a microphone"),
    "download": ("speechrnn.download", "download and extract the Speech Commands data set"),
    "export": ("speechrnn.export", "export a model file to ONNX"),
    "info": ("speechrnn.info", "show what a model file holds: labels, dimensions, recorded accuracy"),
})


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every available subcommand."""
    parser = argparse.ArgumentParser(
        prog="speechrnn",
        description="Recognize spoken commands with a recurrent network over log-mel frames.",
    )
    parser.add_argument("--version", action="version", version=f"speechrnn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        command = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(command)
        command.set_defaults(_run=module.run_from_args)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``speechrnn`` console script; returns the exit status."""
    try:
        parser = build_parser()  # imports the commands' modules: Ctrl-C may land here too
        args = parser.parse_args(argv)
        if not getattr(args, "_run", None):
            parser.print_help(sys.stderr)
            return 2
        return int(args._run(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`speechrnn classify ... | head`): stop quietly
        from speechrnn.outputs import silence_stdout

        silence_stdout()
        return 141  # 128 + SIGPIPE, as a command killed by the broken pipe would report


if __name__ == "__main__":
    sys.exit(main())
