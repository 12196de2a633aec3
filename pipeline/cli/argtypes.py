"""argparse types for numbers with a range: `--near-base nan` or `--dv-alarm -1` is refused by
the parser (exit 2, one line naming the option) instead of quietly giving nonsense verdicts."""

from __future__ import annotations

import argparse
import math


def _number(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return v


def finite(text: str) -> float:
    """Any finite number."""
    return _number(text)


def fraction(text: str) -> float:
    """A finite number in [0, 1]."""
    v = _number(text)
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1], got {v:g}")
    return v


def positive(text: str) -> float:
    """A finite number > 0."""
    v = _number(text)
    if not v > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {v:g}")
    return v


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


def alarm_rule_flags(p: argparse.ArgumentParser) -> None:
    """--alpha and --share: the alarm rule's config keys `alarm.alpha` and `alarm.share` (the rest
    at their defaults) for verbs that read stored samples or evidence rather than a run config."""
    from goodhart.pipeline.config.schema import AlarmConfig

    d = AlarmConfig()
    p.add_argument(
        "--alpha",
        type=fraction,
        default=d.alpha,
        help=f"false-alarm rate under the light-tailed null (default {d.alpha:g})",
    )
    p.add_argument(
        "--share",
        type=positive,
        default=d.share,
        help="the alarm's threshold: share of the gain carried by samples beyond the bulk's 0.9 quantile a "
        f"significant point needs to read `alarm` (default {d.share:g}, set on the benches' dev halves)",
    )


def alarm_rule(args: argparse.Namespace):
    """The goodhart.eval.alarm.AlarmRule of alarm_rule_flags' options, validated as the config's
    `alarm:` keys are (a bad value: one line naming the option)."""
    from pydantic import ValidationError

    from goodhart.pipeline.config.schema import AlarmConfig
    from goodhart.pipeline.errors import UsageError

    try:
        return AlarmConfig(alpha=args.alpha, share=args.share).rule()
    except ValidationError as e:
        err = e.errors()[0]
        raise UsageError(f"--{err['loc'][0]}: {err['msg']}") from None


def host_name(text: str) -> str:
    """argparse type: an interface to bind, as an IP address (`127.0.0.1`, `::1`, `0.0.0.0`) or a
    host name (letters, digits, '-' in dot-separated labels)."""
    import ipaddress
    import re

    try:
        ipaddress.ip_address(text)
        return text
    except ValueError:
        pass
    label = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    if len(text) > 253 or not re.fullmatch(rf"{label}(\.{label})*\.?", text):
        raise argparse.ArgumentTypeError(f"expected an IP address or a host name (e.g. 127.0.0.1), got {text!r}")
    return text
