"""What every `webtext` command shares on its command line, Beam and training verbs alike: argument types and
the one line a Ctrl-C prints. Plain Python: the parsers of every verb are built from it before any framework
is imported."""

import argparse
import os
import re
import sys

from corpus.errors import InputError

EXIT_INTERRUPTED = 130  # 128 + SIGINT: what shells report for a command stopped by Ctrl-C
_NAME = re.compile(r"[\w.-]+")  # names of NAME=PATH flags become file names


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def named(text: str, flag: str, default_name: bool = False) -> tuple[str, str]:
    """A `flag NAME=PATH` value as (name, path); a bare path is named after its file when `default_name`."""
    name, sep, path = text.partition("=")
    if not sep and default_name:
        name, path = os.path.basename(text).split(".")[0], text
    elif not sep or not name or not path:
        raise InputError(f"{flag} {text}: expected NAME=PATH")
    if not _NAME.fullmatch(name):
        raise InputError(f"{flag} {text}: a name is letters, digits, '_', '-' and '.'")
    return name, path


def interrupted(command: str, next_step: str) -> int:
    """Report a Ctrl-C (KeyboardInterrupt) in one line on stderr instead of a traceback; return 130.

    `next_step` says what the user can do now, e.g. "the same command with --resume continues from step 200".
    Use: ``except KeyboardInterrupt: return interrupted("train", ...)`` in a command handler.
    """
    print(f"webtext {command}: interrupted; {next_step}", file=sys.stderr, flush=True)
    return EXIT_INTERRUPTED
