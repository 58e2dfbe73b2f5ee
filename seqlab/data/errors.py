"""The one exception for bad input data, raised by every reader and preprocessing step in seqlab.data."""


class DataError(ValueError):
    """Bad input data: the message names the file (or field, or row) and what was expected."""
