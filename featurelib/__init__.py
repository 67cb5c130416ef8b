"""The library behind this Feast feature repository.

Modules, one job each:

* ``timeutil``   integer-microsecond UTC time;
* ``semantics``  the exact definition of every stored feature (the single source of truth);
* ``engine``     vectorized computation of feature rows from raw events;
* ``generate``   seeded synthetic raw events;
* ``batch``      raw Parquet -> feature Parquet for the offline store;
* ``online_store`` the Redis online store plugin selected in ``feature_store.yaml``;
* ``redis_server`` private ``redis-server`` processes (tests, demo fallback);
* ``repo``       loading the feature store and its definitions;
* ``validation``, ``pit``, ``docs``, ``training``: the library API behind ``feature_utils.py``.
"""
