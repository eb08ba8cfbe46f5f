"""What the devcluster command lines share: logging set-up and dispatch."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence


def run(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> int:
    """Parse `argv`, set up logging (quiet HTTP clients unless --verbose), run the subcommand."""
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not args.verbose:
        for noisy in ("httpx", "httpx2", "httpcore"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    result: int = args.func(args)
    return result
