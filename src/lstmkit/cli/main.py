"""`lstmkit` command line: forecast, predict, demo, classify, generate, seq2seq, inspect.

Library errors (LstmkitError), bad flags and system errors (OSError: a full disk, a permission) end
the program with one line `error: ...` on stderr and exit code 2; an interrupt exits with 130.
Anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from lstmkit.errors import LstmkitError

from . import demo, forecast, generate, inspect_cmd, predict, seq2seq_cmd
from . import classify

EXIT_ERROR = 2


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (its usage block would make them several lines)."""

    def error(self, message: str):
        print(f"error: {message} (see '{self.prog} --help')", file=sys.stderr)
        sys.exit(EXIT_ERROR)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="lstmkit", description="Forecast time series, classify sequences, model and translate text, and "
        "watch the gates of the LSTM family.",
        epilog="Run 'lstmkit forecast' with no arguments for the airline passengers example.")
    sub = parser.add_subparsers(dest="command", required=True,
                                metavar="{forecast,predict,demo,classify,generate,seq2seq,inspect}")
    for module in (forecast, predict, demo, classify, generate, seq2seq_cmd, inspect_cmd):
        module.add_parser(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:                 # --help (0) or a bad flag (2, one line printed)
        return e.code if isinstance(e.code, int) else EXIT_ERROR
    try:
        return args.run(args) or 0
    except LstmkitError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except OSError as e:
        where = f" {e.filename}:" if e.filename else ""
        print(f"error:{where} {e.strerror or e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
