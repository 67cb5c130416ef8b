"""The Redis online store selected in ``feature_store.yaml``.

``type: featurelib.online_store.RedisOnlineStore`` is Feast's Redis store with one
change: the connection comes from the environment. ``REDIS_CONNECTION_STRING``
(Feast's format, ``host:port[,password=...][,ssl=true][,db=N]``) is read when the
configuration loads and defaults to ``localhost:6379``, so plain ``feast``
commands work with nothing set, and passwords never sit in the repository.
(Feast expands ``${VAR}`` in ``feature_store.yaml`` with ``os.path.expandvars``,
which has no default syntax and leaves an unset ``${VAR}`` as literal text; a
value that still contains ``${`` is treated as unset here.)

Importing this module also applies ``_patch_registry_dump_for_python_odfvs``:
Feast imports it for every ``feast`` command, because the configuration names it.
"""

from __future__ import annotations

import os
import re

from feast.infra.online_stores.redis import RedisOnlineStore as FeastRedisOnlineStore
from feast.infra.online_stores.redis import RedisOnlineStoreConfig as FeastRedisOnlineStoreConfig
from pydantic import Field, StrictStr, field_validator

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


def _patch_registry_dump_for_python_odfvs() -> None:
    """Make ``feast registry-dump`` work with ``mode="python"`` on-demand views (Feast 0.67).

    ``BaseRegistry.to_dict`` special-cases ``PandasTransformation`` and
    ``SubstraitTransformation``; any other transformation falls into a branch that
    writes ``odfv_dict["spec"]["featureTransformation"]["substraitPlan"]["body"]``.
    A Python transformation is serialized as ``userDefinedFunction`` only, so that key
    does not exist and every dump raises ``KeyError: 'substraitPlan'``. The isinstance
    check reads the module global ``PandasTransformation``; widening it to include
    ``PythonTransformation`` sends Python views down the branch that dumps their source
    (``udf_string``), which is what a dump should show. Nothing else in that module uses
    the name. A no-op once Feast handles Python transformations itself.
    """
    from feast.infra.registry import base_registry
    from feast.transformation.pandas_transformation import PandasTransformation
    from feast.transformation.python_transformation import PythonTransformation

    if base_registry.PandasTransformation is PandasTransformation:
        base_registry.PandasTransformation = (PandasTransformation, PythonTransformation)  # type: ignore[assignment]


_patch_registry_dump_for_python_odfvs()
