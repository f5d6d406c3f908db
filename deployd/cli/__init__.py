"""The `deployd` command: one module per command group, each with `register(subparsers)`."""

from __future__ import annotations

import argparse
from typing import TypeAlias

# What each module's `register` receives: the `add_subparsers()` of the `deployd` parser (a
# string: argparse's class is generic only to type checkers).
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
