"""The one error type the CLI shows as a single line (exit 2) instead of a traceback, and the argument type
every command shares (both the Beam and the training commands import it from here)."""

import argparse
import sys

EXIT_INTERRUPTED = 130  # 128 + SIGINT: what shells report for a command stopped by Ctrl-C


class InputError(Exception):
    """Bad input from the user (a file, a flag, a credential): the message names the file and the problem."""


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def interrupted(command: str, next_step: str) -> int:
    """Report a Ctrl-C (KeyboardInterrupt) in one line on stderr instead of a traceback; return 130.

    `next_step` says what the user can do now, e.g. "the same command with --resume continues from step 200".
    Use: ``except KeyboardInterrupt: return interrupted("train", ...)`` in a command handler.
    """
    print(f"webtext {command}: interrupted; {next_step}", file=sys.stderr, flush=True)
    return EXIT_INTERRUPTED
