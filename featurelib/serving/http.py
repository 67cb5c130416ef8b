"""The HTTP plumbing of the feature server (``featurelib.serving.server``): its limits, the
one-line 4xx errors and how exceptions map to statuses, JSON bodies and request fields, and
request deadlines."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from feast.errors import FeastError, FeatureNameCollisionError

from featurelib.errors import first_line


@dataclass(frozen=True)
class Limits:
    """What one request may ask and how long it may wait (all configurable on the command line)."""

    max_entities: int = 1000
    """Entity rows per request; more is a 413."""
    max_body_bytes: int = 1 << 20
    """Request body size (1 MiB); more is a 413."""
    deadline_ms: int = 1000
    """Longest a request waits for Redis before a 503."""
    redis_timeout_ms: int = 500
    """Timeout of connecting to Redis (an exchange is bounded by ``deadline_ms``)."""
    registry_check_s: float = 5.0
    """How often the registry file is checked for changes."""
    allow_writes: bool = False
    """Serve /push and /write-to-online-store (with the token of ``FEATURE_SERVER_WRITE_TOKEN``)."""


class HttpError(Exception):
    """An answer other than 200, with its one-line message."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json(body: bytes) -> Any:
    try:
        return json.loads(body, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise HttpError(422, f"the body is not valid JSON: {first_line(exc)}") from None


def status_of(exc: BaseException) -> int:
    """The HTTP status of an exception raised while answering a request."""
    if isinstance(exc, HttpError):
        return exc.status
    if isinstance(exc, FeatureNameCollisionError):
        return 422
    if isinstance(exc, FeastError):
        return exc.http_status_code()
    if isinstance(exc, (ValueError, TypeError, KeyError)):  # Feast's own path: e.g. a missing join key
        return 422
    return 500


def deadline(seconds: float) -> Any:
    """``asyncio.timeout`` (no task per request) where Python has it (3.11+)."""
    if hasattr(asyncio, "timeout"):
        return asyncio.timeout(seconds)
    return _WaitFor(seconds)


class _WaitFor:
    """``asyncio.timeout`` for Python 3.10: cancels the current task after ``seconds``."""

    def __init__(self, seconds: float):
        self.seconds, self.handle, self.expired = seconds, None, False

    async def __aenter__(self) -> None:
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()

        def expire() -> None:
            self.expired = True
            task.cancel()

        self.handle = loop.call_later(self.seconds, expire)

    async def __aexit__(self, kind: Any, exc: Any, tb: Any) -> bool:
        self.handle.cancel()
        if self.expired and kind is asyncio.CancelledError:
            raise asyncio.TimeoutError
        return False


def flag(request: dict, name: str) -> bool:
    value = request.get(name, False)
    if not isinstance(value, bool):
        raise HttpError(422, f"{name}: expected true or false")
    return value


def frame(request: dict, pd: Any) -> Any:
    df = request.get("df")
    if not isinstance(df, dict) or not df or not all(isinstance(v, list) for v in df.values()):
        raise HttpError(422, "df: expected an object of equally long lists (columns)")
    if len({len(v) for v in df.values()}) != 1:
        raise HttpError(422, "df: every column must have the same number of values")
    frame = pd.DataFrame(df)
    for column in ("event_timestamp", "created"):
        if column in frame:
            try:
                frame[column] = pd.to_datetime(frame[column], utc=True)
            except (ValueError, TypeError) as exc:
                raise HttpError(422, f"df.{column}: not timestamps ({first_line(exc)})") from None
    return frame
