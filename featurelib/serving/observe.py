"""What the read path counts and logs: Prometheus metrics of requests, Redis errors and stored
values that do not parse. Metric names start with ``featurelib_serving_``.

A multi-process server sets ``PROMETHEUS_MULTIPROC_DIR`` before this module is imported, so
every worker's counts reach ``/metrics`` (``featurelib.serving.server``).
"""

from __future__ import annotations

import logging
import time

from prometheus_client import Counter, Histogram

log = logging.getLogger("featurelib.serving")

REQUEST_SECONDS = Histogram(
    "featurelib_serving_request_seconds", "Time to answer a request, by endpoint and status code.",
    ["endpoint", "status"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5))
REDIS_ERRORS = Counter("featurelib_serving_redis_errors_total",
                       "Online reads that failed because Redis was down, hung or refused the request.", ["kind"])
DECODE_ERRORS = Counter("featurelib_serving_decode_errors_total",
                        "Stored values that did not parse as their feature's type (served as null).", ["feature_view"])
CLIENT_ERRORS = Counter("featurelib_serving_client_errors_total", "Requests refused with a 4xx, by status code.",
                        ["status"])

_LOG_EVERY_S = 10.0
_last_logged: dict[tuple[str, str], float] = {}


def decode_error(view: str, feature: str, key: str, raw: bytes, exc: BaseException) -> None:
    """Count a stored value that does not parse; log it at most every 10 s per (view, feature)."""
    DECODE_ERRORS.labels(view).inc()
    now = time.monotonic()
    if now - _last_logged.get((view, feature), -_LOG_EVERY_S) >= _LOG_EVERY_S:
        _last_logged[(view, feature)] = now
        log.warning("served null for %s field %s: stored value %r does not parse (%s)", key, feature, raw[:64],
                    str(exc).splitlines()[0] if str(exc) else type(exc).__name__)


def redis_error(exc: BaseException) -> None:
    REDIS_ERRORS.labels(type(exc).__name__).inc()
