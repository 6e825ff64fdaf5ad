"""The ``rxllm`` command line."""

from __future__ import annotations

import argparse
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rxllm", description="Stream from LLM providers.")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo", help="offline demo: a recorded stream replayed over loopback HTTP"
    )
    demo.add_argument(
        "--pace", type=float, default=0.03, help="seconds between replayed events (default 0.03)"
    )
    args = parser.parse_args(argv)
    if args.command == "demo":
        from ._demo import run

        return run(pace=args.pace)
    parser.error(f"unknown command {args.command!r}")  # pragma: no cover - argparse exits
    return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
