"""Errors the user can fix. The CLI prints them as one paragraph and exits 2, without a traceback."""


class UserError(Exception):
    """An error caused by input the user can fix (a path, a key, a value); the message names it."""
