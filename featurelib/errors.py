"""Operational errors: a cause a person can act on, printed as one line with exit code 2.

``OperationalError`` is a ``click.ClickException``, so any Click command it escapes from
(``python -m featurelib.stream``, ``python -m featurelib.batch``, ``feature_utils.py``, and
Feast's own ``feast`` CLI) prints ``Error: <message>`` on one line and exits 2 instead of a
traceback. Library callers catch it like any exception. Subclasses that Feast may raise
through ``feast serve`` are also ``FeastError``s, which the server answers with their own
status code.
"""

from __future__ import annotations

from pathlib import Path

import click
from feast.errors import FeastError


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type name when it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class OperationalError(click.ClickException):
    """Something outside the code is wrong (a file, a server, a credential): one line, exit 2."""

    exit_code = 2


class UnreadableFileError(OperationalError, FeastError):
    """A data file exists but cannot be read (corrupt, truncated, not Parquet)."""

    def __init__(self, path: Path | str, cause: BaseException | str, what: str = "Parquet file"):
        self.path = Path(path)
        reason = cause if isinstance(cause, str) else first_line(cause)
        super().__init__(f"cannot read the {what} {self.path}: {reason}")

    def http_status_code(self) -> int:
        return 500
