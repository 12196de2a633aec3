"""argparse types shared by the verb modules of this room (main.py and cluster.py both take a
`--port`): one home, so no verb module imports another."""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (`--jobs 0` would run nothing, silently)."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected 1 or more, got {v}")
    return v


def port_number(text: str) -> int:
    """argparse type: a TCP port, 1..65535."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 1 <= v <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 1..65535, got {v}")
    return v
