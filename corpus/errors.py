"""The one error type the CLI shows as a single line (exit 2) instead of a traceback."""


class InputError(Exception):
    """Bad input from the user (a file, a flag, a credential): the message names the file and the problem."""
