"""The `goodhart` command: parse arguments, call engine functions, print tables. Holds no
orchestration of its own; may import every other room, and nothing imports it."""

from goodhart.pipeline.cli.main import main

__all__ = ["main"]
