"""The one exception type for bad user input (files, records, specifications, artefacts).

The command line turns an :class:`InputError` into a one-line message and exit status 2.
"""


class InputError(ValueError):
    """Input that cannot be used; the message names the file, line, record or field at fault."""
