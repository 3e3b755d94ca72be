"""The one error type a user of gsal sees.

Every check on user input at a public boundary raises :class:`GsalInputError` with a message that
says what is wrong *and what to do about it*. The CLI turns it into one red line and exit code 2;
Python users can catch it (it is also a ``ValueError``).
"""

__all__ = ["GsalError", "GsalInputError", "IntegrityError", "first_line"]


class GsalError(Exception):
    """Base class of the errors gsal raises on purpose."""


class GsalInputError(GsalError, ValueError):
    """Bad user input: a wrong shape, an empty request, an unreadable file, a bad option value."""


class IntegrityError(GsalError):
    """A file whose content does not match its recorded checksum (zoo weights)."""


def first_line(exc: BaseException, limit: int = 300) -> str:
    """The first non-empty line of an exception's message, for one-line error reports."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return lines[0][:limit] if lines else type(exc).__name__
