"""`lstmkit` command line: forecast, predict, demo.

Library errors (LstmkitError) end the program with one line `error: ...` on stderr and exit code 2;
an interrupt exits with 130. Anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from lstmkit.errors import LstmkitError

from . import demo, forecast, predict
from . import classify

EXIT_ERROR = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lstmkit", description="Forecast time series with the LSTM family.",
        epilog="Run 'lstmkit forecast' with no arguments for the airline passengers example.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{forecast,predict,demo,classify}")
    for module in (forecast, predict, demo, classify):
        module.add_parser(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args) or 0
    except LstmkitError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
