"""The command line's one error type (its own module so command modules can share it)."""

from __future__ import annotations


class CliError(Exception):
    """A user-facing failure: printed as one line."""
