"""Operational errors: a cause a person can act on, printed as one line with exit code 2.

``OperationalError`` is a ``click.ClickException``, so any Click command it escapes from
(``python -m featurelib.stream``, ``python -m featurelib.batch``, ``feature_utils.py``, and
Feast's own ``feast`` CLI) prints ``Error: <message>`` on one line and exits 2 instead of a
traceback. Library callers catch it like any exception. Subclasses that Feast may raise
through ``feast serve`` are also ``FeastError``s, which the server answers with their own
status code.
"""

from __future__ import annotations

from collections.abc import Sequence
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


class KeyPrefixOwnedError(OperationalError, FeastError):
    """Another Feast project's rows live under this key prefix on this Redis."""

    def __init__(self, prefix: str, owner: str, project: str):
        super().__init__(f"key prefix {prefix!r} on this Redis holds the rows of Feast project {owner!r}, not "
                         f"{project!r}: give {project!r} its own online_store.key_prefix in feature_store.yaml")


class UnreadableFileError(OperationalError, FeastError):
    """A data file exists but cannot be read (corrupt, truncated, not Parquet)."""

    def __init__(self, path: Path | str, cause: BaseException | str, what: str = "Parquet file"):
        self.path = Path(path)
        reason = cause if isinstance(cause, str) else first_line(cause)
        super().__init__(f"cannot read the {what} {self.path}: {reason}")

    def http_status_code(self) -> int:
        return 500


def unreadable(files: Sequence[Path], cause: BaseException) -> UnreadableFileError | None:
    """Which of ``files`` made a reader fail with ``cause``: the first that pyarrow cannot read
    through (footer and every page: a corrupt page behind an intact footer too), else the one
    ``cause``'s message names (a missing one too); None when neither tells."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    for file in files:
        if not Path(file).exists():
            continue
        try:
            for _ in pq.ParquetFile(file).iter_batches():
                pass
        except (pa.ArrowException, OSError) as exc:
            return UnreadableFileError(file, exc)
    named = next((f for f in files if str(f) in str(cause)), None)
    return UnreadableFileError(named, cause) if named is not None else None


class RowsRefusedError(OperationalError, FeastError):
    """The online store's write script refused rows of a write; every other row of it was applied.
    Raised by Feast-facing writes (push, ``write_to_online_store``, materialize): ``feast serve``
    answers HTTP 422 with the message, the ``feast`` CLI prints it on one line and exits 2.

    ``result`` is the script's code for the first refused row: -1, its event timestamp
    (``event_ts``, integer µs since the epoch) is more than ``max_ahead_us`` µs ahead of the Redis
    server's clock; -2, its event timestamp is not a number."""

    def __init__(self, view: str, refused: int, key: str, event_ts: str | int, result: int, max_ahead_us: int):
        self.view, self.refused = view, refused
        self.key, self.event_ts, self.result, self.max_ahead_us = key, event_ts, result, max_ahead_us
        rows = "1 row" if refused == 1 else f"{refused} rows"
        super().__init__(f"refused {rows} of feature view {view} (any other rows were applied): {self._rule()};"
                         f" the first is {key} with event timestamp {_stamp(event_ts)}")

    @classmethod
    def combine(cls, errors: list[RowsRefusedError]) -> RowsRefusedError:
        """One error for several writes of the same view, naming the first refused row."""
        first = errors[0]
        if len(errors) == 1:
            return first
        return cls(first.view, sum(e.refused for e in errors), first.key, first.event_ts, first.result,
                   first.max_ahead_us)

    def _rule(self) -> str:
        if self.result == -2:
            return "an event timestamp must be integer microseconds since the epoch"
        return f"an event timestamp may be at most {self.max_ahead_us / 1e6:g} s ahead of the Redis server's clock"

    def http_status_code(self) -> int:
        return 422

    def grpc_status_code(self):
        from grpc import StatusCode

        return StatusCode.INVALID_ARGUMENT


def _stamp(event_ts: str | int) -> str:
    """Integer microseconds since the epoch as ISO 8601 UTC; anything else quoted as given."""
    from featurelib.timeutil import from_us

    try:
        return from_us(int(event_ts)).isoformat()
    except (TypeError, ValueError, OverflowError, OSError):
        return repr(event_ts)


class BadRequestError(FeastError, ValueError):
    """A client's online-feature request is malformed: a missing or mistyped field, a null or
    wrongly typed entity id, a feature reference without ``view:feature``. One line naming the
    field; HTTP 422. Still a ``ValueError`` for SDK callers."""

    def http_status_code(self) -> int:
        return 422

    def grpc_status_code(self):
        from grpc import StatusCode

        return StatusCode.INVALID_ARGUMENT


class StoreUnavailableError(FeastError):
    """The online store did not answer within the request's deadline (down, hung, refusing the
    credentials): HTTP 503, so a client retries elsewhere instead of waiting."""

    def http_status_code(self) -> int:
        return 503
