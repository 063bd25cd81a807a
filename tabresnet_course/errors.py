"""The one exception type for bad user input (files, records, specifications, artefacts).

The command line turns an :class:`InputError` into a one-line message and exit status 2.
"""

__all__ = ["InputError", "collapse_whitespace"]


class InputError(ValueError):
    """Input that cannot be used; the message names the file, line, record or field at fault."""


def collapse_whitespace(message: object) -> str:
    """``str(message)`` on one line: every run of whitespace (newlines included) becomes one space.

    Error messages from PyTorch, pandas and NumPy span several lines; an :class:`InputError`
    that quotes them must stay one line.
    """
    return " ".join(str(message).split())
