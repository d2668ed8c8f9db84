"""Command line: `python -m carbrands <command>`; for now `predict`."""
from __future__ import annotations

import argparse
import sys

from carbrands import startup

startup.import_tensorflow()   # before predict imports it: without TensorFlow's start-up notices

from carbrands import predict  # noqa: E402
from carbrands.errors import UserError  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m carbrands", description="Car brand classification.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    predict.add_arguments(commands.add_parser(
        "predict", help="top-k brands for image files or folders",
        description="Print the top-k brands, with probabilities, for each image (folders are searched "
                    "recursively). Unusable files are reported on stderr and give exit status 1."))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return predict.run(args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return predict.EXIT_SETUP


if __name__ == "__main__":
    sys.exit(main())
