"""The HTTP feature server: Feast's ``/get-online-features`` API over the compiled read path.

``python feature_utils.py serve`` runs it (gunicorn, asyncio workers, two by default, never
recycled, keep-alive kept). Requests and responses are Feast's, byte for byte for the
same data: a client of ``feast serve`` can point at this server unchanged. On top:

* every client mistake is a 4xx with ``{"detail": "<one line naming the field>"}``: 422 for a
  malformed body or request (wrong types, null or missing ids, refs without ``view:feature``,
  name collisions), 404 for an unknown feature view, feature or service, 413 for more than
  ``max_entities`` entity rows or a body over ``max_body_bytes``;
* connecting to Redis has a timeout (``redis_timeout_ms``) and every request a deadline
  (``deadline_ms``) that bounds each exchange with Redis: a down, hung or password-refusing
  Redis is a 503 within the deadline;
* ``GET /health`` is liveness (200 while the process runs); ``GET /ready`` checks Redis and
  the registry (200 or 503); ``GET /metrics`` is Prometheus text (``serving.observe``);
* ``POST /push`` and ``POST /write-to-online-store`` answer 403 unless the server was
  started with ``allow_writes`` and a token in ``FEATURE_SERVER_WRITE_TOKEN``; then they
  need ``Authorization: Bearer <token>``. ``/materialize`` is not served (use the CLI).

The registry is re-read in the background when its file changes (checked every
``registry_check_s`` seconds) and before Feast's registry cache would expire, so no
request ever pays for it.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from featurelib import feast_compat
from featurelib.errors import StoreUnavailableError, first_line
from featurelib.serving import observe
from featurelib.serving.http import HttpError, Limits, deadline, flag, frame, parse_json, status_of
from featurelib.serving.plan import ReadPlans
from featurelib.serving.provider import read_async
from featurelib.serving.response import json_body

log = logging.getLogger("featurelib.serving")
WRITE_TOKEN_ENV = "FEATURE_SERVER_WRITE_TOKEN"
_JSON = [(b"content-type", b"application/json")]


class FeatureServer:
    """The ASGI application (one per worker process)."""

    def __init__(self, repo: Path, limits: Limits | None = None):
        self.repo, self.limits = Path(repo), limits or Limits()
        self.store: Any = None
        self.client: Any = None
        self.plans = ReadPlans()
        self._services: dict[str, tuple[Any, Any]] = {}
        self._registry_mtime: int | None = None
        self._refresher: asyncio.Task | None = None
        self._token = os.environ.get(WRITE_TOKEN_ENV, "")

    # ------------------------------------------------------------------ life cycle

    async def startup(self) -> None:
        from featurelib.online_store import RedisHashOnlineStore
        from featurelib.redis_connection import make_client
        from featurelib.repo import load_store

        self.store = await asyncio.to_thread(load_store, self.repo)
        await asyncio.to_thread(self.store.refresh_registry)
        self._registry_mtime = self._mtime()
        online = feast_compat.online_store_of(self.store)
        if not isinstance(online, RedisHashOnlineStore):
            raise RuntimeError("the feature server needs online_store type featurelib.online_store.RedisHashOnlineStore")
        # Connecting has its own timeout; every exchange is bounded by the request's deadline.
        self.client = make_client(self.store.config.online_store, asynchronous=True, socket_timeout=None,
                                  socket_connect_timeout=self.limits.redis_timeout_ms / 1000)
        self._refresher = asyncio.create_task(self._refresh_registry())

    async def shutdown(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
        if self.client is not None:
            await self.client.aclose()

    def _mtime(self) -> int | None:
        from featurelib.repo import registry_file

        try:
            return registry_file(self.store).stat().st_mtime_ns
        except (OSError, ValueError):
            return None

    async def _refresh_registry(self) -> None:
        """Re-read the registry when its file changed, or before Feast's cache of it expires."""
        registry = self.store.registry
        while True:
            await asyncio.sleep(self.limits.registry_check_s)
            try:
                ttl = getattr(registry, "cached_registry_proto_ttl", None)
                created = getattr(registry, "cached_registry_proto_created", None)
                ttl_s = ttl.total_seconds() if ttl is not None else 0
                aging = bool(ttl_s and created is not None and
                             (time.time() - created.timestamp()) > ttl_s - 3 * self.limits.registry_check_s)
                mtime = self._mtime()
                if mtime != self._registry_mtime or aging:
                    await asyncio.to_thread(self.store.refresh_registry)
                    self._registry_mtime = mtime
            except Exception:  # keep serving the registry we have
                log.exception("registry refresh failed; serving the previous registry")

    # ------------------------------------------------------------------ ASGI

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        started = time.perf_counter()
        path, method = scope["path"], scope["method"]
        endpoint = path if path in _ROUTES else "other"
        try:
            handler = _ROUTES.get(path)
            if handler is None:
                raise HttpError(404, f"no such endpoint: {path} (this server answers {', '.join(sorted(_ROUTES))})")
            want, fn = handler
            if method != want:
                raise HttpError(405, f"{path} takes {want}, not {method}")
            status, body, headers = await fn(self, scope, receive)
        except Exception as exc:  # every failure becomes one JSON line with its status
            status = status_of(exc)
            message = exc.message if isinstance(exc, HttpError) else first_line(exc)
            if status >= 500 and status != 503:
                log.exception("%s %s failed", method, path)
            elif status < 500:
                observe.CLIENT_ERRORS.labels(str(status)).inc()
            body, headers = json.dumps({"detail": message}).encode(), _JSON
        await send({"type": "http.response.start", "status": status,
                    "headers": [*headers, (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
        observe.REQUEST_SECONDS.labels(endpoint, str(status)).observe(time.perf_counter() - started)

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": first_line(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _body(self, scope: dict, receive: Any) -> bytes:
        limit = self.limits.max_body_bytes
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                raise HttpError(413, f"the body is {int(value)} bytes; this server takes at most {limit}")
        chunks, size = [], 0
        while True:
            message = await receive()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise HttpError(413, f"the body is over {limit} bytes, the most this server takes")
            chunks.append(chunk)
            if not message.get("more_body"):
                return b"".join(chunks)

    # ------------------------------------------------------------------ endpoints

    async def get_online_features(self, scope: dict, receive: Any):
        request = parse_json(await self._body(scope, receive))
        if not isinstance(request, dict):
            raise HttpError(422, "the body must be a JSON object with entities and features or feature_service")
        entities = request.get("entities")
        if not isinstance(entities, dict):
            raise HttpError(422, "entities: expected an object of lists, e.g. {\"card_id\": [\"card_1\"]}")
        for name, column in entities.items():
            if not isinstance(column, list):
                raise HttpError(422, f"entities.{name}: expected a list of values")
        rows = max((len(c) for c in entities.values()), default=0)
        if rows > self.limits.max_entities:
            raise HttpError(413, f"entities: {rows} rows; this server serves at most {self.limits.max_entities} per "
                                 "request (split the request, or raise --max-entities)")
        full = flag(request, "full_feature_names")
        metadata = flag(request, "include_feature_view_version_metadata")
        features = self._features(request)
        plan = self.plans.plan(self.store.registry, self.store.project, features, full, metadata,
                               self.store.config.online_store.key_prefix)
        bound = plan.bind(entities) if plan is not None else None
        try:
            async with deadline(self.limits.deadline_ms / 1000):
                if bound is None:  # a shape only Feast's own path reproduces
                    return 200, await self._feast_path(features, entities, full, metadata), _JSON
                replies = await read_async(self.client, bound)
        except asyncio.TimeoutError:
            observe.redis_error(TimeoutError())
            raise StoreUnavailableError(
                f"the online store (Redis) did not answer within {self.limits.deadline_ms} ms") from None
        return 200, json_body(bound.result(replies, int(time.time() * 1_000_000))), _JSON

    def _features(self, request: dict) -> Any:
        service = request.get("feature_service")
        features = request.get("features", [])
        if service is not None:
            if not isinstance(service, str) or not service:
                raise HttpError(422, "feature_service: expected the name of a feature service")
            if features:
                raise HttpError(422, "give features or feature_service, not both")
            return self._service(service)
        if not isinstance(features, list) or not features:
            raise HttpError(422, "features: give a non-empty list of feature references (view:feature), "
                                 "or feature_service")
        return features

    def _service(self, name: str) -> Any:
        """The ``FeatureService`` object, built once per registry version (Feast builds one per request)."""
        registry = self.store.registry
        stamp = getattr(registry, "cached_registry_proto_created", None)
        hit = self._services.get(name)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        service = registry.get_feature_service(name, self.store.project, allow_cache=True)
        if len(self._services) > 256:
            self._services.clear()
        self._services[name] = (stamp, service)
        return service

    async def _feast_path(self, features: Any, entities: dict, full: bool, metadata: bool) -> bytes:
        from feast.feature_server_utils import convert_response_to_dict

        response = await self.store.get_online_features_async(
            features=features, entity_rows=entities, full_feature_names=full,
            include_feature_view_version_metadata=metadata)
        return json.dumps(convert_response_to_dict(response.proto), ensure_ascii=False, allow_nan=False,
                          separators=(",", ":")).encode()

    async def health(self, scope: dict, receive: Any):
        return 200, b"", []

    async def ready(self, scope: dict, receive: Any):
        checks: dict[str, Any] = {}
        try:
            await asyncio.wait_for(self.client.ping(), self.limits.deadline_ms / 1000)
            checks["redis"] = "ok"
        except (Exception, asyncio.TimeoutError) as exc:
            observe.redis_error(exc)
            raise StoreUnavailableError(
                f"not ready: Redis does not answer PING ({first_line(exc) or 'timeout'})") from None
        try:
            views = self.store.registry.list_feature_views(self.store.project, allow_cache=True)
        except Exception as exc:
            raise StoreUnavailableError(f"not ready: the registry cannot be read ({first_line(exc)})") from exc
        if not views:
            raise StoreUnavailableError("not ready: the registry has no feature views (run feast apply)")
        checks["registry"] = "ok"
        checks["feature_views"] = len(views)
        return 200, json.dumps(checks).encode(), _JSON

    async def metrics(self, scope: dict, receive: Any):
        from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

        registry = REGISTRY
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
        return 200, generate_latest(registry), [(b"content-type", CONTENT_TYPE_LATEST.encode())]

    def _authorize_write(self, scope: dict) -> None:
        if not self.limits.allow_writes:
            raise HttpError(403, "writes are disabled on this server; start it with --allow-writes and "
                                 f"{WRITE_TOKEN_ENV} set (docs/SERVING.md)")
        sent = dict(scope.get("headers", ())).get(b"authorization", b"").decode("latin-1")
        if not self._token or not hmac.compare_digest(sent.encode(), f"Bearer {self._token}".encode()):
            raise HttpError(401, "writes need the header Authorization: Bearer <FEATURE_SERVER_WRITE_TOKEN>")

    async def push(self, scope: dict, receive: Any):
        import pandas as pd
        from feast.data_source import PushMode

        self._authorize_write(scope)
        request = parse_json(await self._body(scope, receive))
        if not isinstance(request, dict) or not isinstance(request.get("push_source_name"), str):
            raise HttpError(422, "push_source_name: expected the name of a push source")
        to = {"online": PushMode.ONLINE, "offline": PushMode.OFFLINE,
              "online_and_offline": PushMode.ONLINE_AND_OFFLINE}.get(request.get("to", "online"))
        if to is None:
            raise HttpError(422, "to: expected online, offline or online_and_offline")
        df = frame(request, pd)
        await asyncio.to_thread(self.store.push, request["push_source_name"], df, allow_registry_cache=True, to=to)
        return 200, b"", []

    async def write_to_online_store(self, scope: dict, receive: Any):
        import pandas as pd

        self._authorize_write(scope)
        request = parse_json(await self._body(scope, receive))
        if not isinstance(request, dict) or not isinstance(request.get("feature_view_name"), str):
            raise HttpError(422, "feature_view_name: expected the name of a feature view")
        df = frame(request, pd)
        try:
            await asyncio.to_thread(self.store.write_to_online_store, request["feature_view_name"], df,
                                    allow_registry_cache=True)
        except KeyError as exc:  # Feast's error for an unknown view: a bare KeyError of its name
            if exc.args != (request["feature_view_name"],):
                raise
            raise HttpError(404, f"feature_view_name: no feature view named {request['feature_view_name']}") from None
        return 200, b"", []


_ROUTES = {
    "/get-online-features": ("POST", FeatureServer.get_online_features),
    "/health": ("GET", FeatureServer.health),
    "/ready": ("GET", FeatureServer.ready),
    "/metrics": ("GET", FeatureServer.metrics),
    "/push": ("POST", FeatureServer.push),
    "/write-to-online-store": ("POST", FeatureServer.write_to_online_store),
}


def serve(repo: Path, host: str, port: int, workers: int, limits: Limits, keep_alive_s: int = 30,
          access_log: bool = False) -> None:
    """Run the server under gunicorn with asyncio (uvicorn) workers; workers are never recycled."""
    import tempfile

    import gunicorn.app.base

    from featurelib.repo import UserError

    if limits.allow_writes and not os.environ.get(WRITE_TOKEN_ENV):
        raise UserError(f"--allow-writes needs a token in the environment variable {WRITE_TOKEN_ENV}")
    # The workers' counts meet in a directory of this server's own (an inherited one, which
    # importing feast.metrics sets in every process, would mix in other processes' counts).
    metrics_dir = tempfile.mkdtemp(prefix="featurelib-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = os.environ["PROMETHEUS_MULTIPROCESS_DIR"] = metrics_dir
    app = FeatureServer(repo, limits)

    def child_exit(server: Any, worker: Any) -> None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)

    class Application(gunicorn.app.base.BaseApplication):
        def load_config(self) -> None:
            for key, value in {"bind": f"{host}:{port}", "workers": workers, "worker_class":
                               "uvicorn_worker.UvicornWorker", "max_requests": 0, "keepalive": keep_alive_s,
                               "timeout": 60, "graceful_timeout": 10, "accesslog": "-" if access_log else None,
                               "child_exit": child_exit}.items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            return app

    Application().run()

