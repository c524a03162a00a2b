"""The one error type the CLI shows as a single line (exit 2) instead of a traceback, and the argument type
every command shares (both the Beam and the training commands import it from here)."""

import argparse


class InputError(Exception):
    """Bad input from the user (a file, a flag, a credential): the message names the file and the problem."""


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value
