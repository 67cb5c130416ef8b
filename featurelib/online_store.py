"""The Redis online store selected in ``feature_store.yaml``.

``type: featurelib.online_store.RedisOnlineStore`` is Feast's Redis store with one
change: the connection comes from the environment. ``REDIS_CONNECTION_STRING``
(Feast's format, ``host:port[,password=...][,ssl=true][,db=N]``) is read when the
configuration loads and defaults to ``localhost:6379``, so plain ``feast``
commands work with nothing set, and passwords never sit in the repository.
(Feast expands ``${VAR}`` in ``feature_store.yaml`` with ``os.path.expandvars``,
which has no default syntax and leaves an unset ``${VAR}`` as literal text; a
value that still contains ``${`` is treated as unset here.)

Importing this module also applies ``featurelib.feast_compat``: Feast imports it for
every ``feast`` command, because the configuration names it.
"""

from __future__ import annotations

import os
import re

from feast.infra.online_stores.redis import RedisOnlineStore as FeastRedisOnlineStore
from feast.infra.online_stores.redis import RedisOnlineStoreConfig as FeastRedisOnlineStoreConfig
from pydantic import Field, StrictStr, field_validator

from featurelib import feast_compat

DEFAULT_CONNECTION_STRING = "localhost:6379"
CONNECTION_ENV = "REDIS_CONNECTION_STRING"
_UNEXPANDED = re.compile(r"\$\{[^}]*\}")


def connection_string_from_env() -> str:
    """``REDIS_CONNECTION_STRING`` if set and non-empty, else ``localhost:6379``."""
    return os.environ.get(CONNECTION_ENV, "").strip() or DEFAULT_CONNECTION_STRING


class RedisOnlineStoreConfig(FeastRedisOnlineStoreConfig):
    """Feast's Redis configuration, with the connection string taken from the environment."""

    type: StrictStr = "featurelib.online_store.RedisOnlineStore"  # type: ignore[assignment]
    connection_string: StrictStr = Field(default_factory=connection_string_from_env)

    @field_validator("connection_string", mode="before")
    @classmethod
    def _unexpanded_means_unset(cls, value: object) -> object:
        if isinstance(value, str) and (not value.strip() or _UNEXPANDED.search(value)):
            return connection_string_from_env()
        return value


class RedisOnlineStore(FeastRedisOnlineStore):
    """Feast's ``RedisOnlineStore`` configured by ``RedisOnlineStoreConfig``."""


feast_compat.apply()
