"""The library behind this Feast feature repository. Modules, one job each:

Time and the features' meaning

* ``timeutil``      integer-microsecond UTC time, parsing and formatting;
* ``semantics``     every view's aggregations (declared as data) and the derivation of its features;
* ``aggregations``  one operator per operation (count, sum, max, distinct, last, ...), vectorized
  and incremental; ``custom_aggregations``: the named custom ones (``CurrentSession``);
* ``engine``        the vectorized computation of feature rows from raw events, over ``timeline``;
* ``reference``     the brute-force oracle: every feature straight from its definition (tests);

Raw events and the batch pipeline

* ``raw_events``    the raw events' fields, types and ranges; ``raw_reader`` reads their Parquet;
* ``generate``      seeded synthetic raw events (the demo, tests and benchmarks only): the transactions
  and the command writing both sets; ``generate_clickstream``: the clickstream; ``generate_population``:
  the data set's config and the cards, users, devices and merchants both generators draw from;
* ``batch``         raw Parquet -> one feature Parquet per view, for the offline store;
* ``duck``          DuckDB queries over Parquet, each on its own connection;

Feast plugins (named in ``feature_store.yaml``) and the stream contract

* ``contract``      keys, expiry and the write script's arguments: the one owner of a row's form in
  Redis; ``codecs``: the text of each value type (``json_values``: the JSON text of composite values);
* ``redis_writer``  the one writer of rows (script, pipelining, clusters, sync and async);
* ``redis_connection`` redis-py clients from the online store's settings;
* ``online_store``  the Redis online store; ``arrow_rows`` and ``proto_rows`` turn Arrow batches and
  Feast's protos into contract rows;
* ``offline_store`` Feast's DuckDB store with ``ASOF JOIN`` point-in-time joins (``asof_join``);
* ``spark_offline_store`` Feast's Spark offline store over the same Parquet (``feature_store.spark.yaml``);
* ``materialization`` ``feast materialize`` handing Arrow batches to the online store;
* ``serving``       the compiled read path (provider) and the HTTP feature server;
* ``stream``        the stream processor: Redis Streams in, incremental window state, contract rows out;
* ``feast_compat``, ``fast_start``: fixes of Feast behaviour, and its faster start-up;

Using the repository (the library behind ``feature_utils.py``)

* ``repo``, ``paths``, ``errors``: loading the repository, where things live, one-line errors;
* ``validation``, ``coverage``, ``pit``, ``skew``, ``quality``, ``drift``, ``freshness``: checks and audits,
  over one data access layer (``feature_data``) and one report base (``report``), tags read and
  written through ``tags``;
* ``docs``, ``spec``, ``training``, ``model_registry``: documentation, specs, training sets, MLflow;
* ``restore``, ``demo``, ``redis_server``: rebuilding the online store, ``make demo``, private Redis;
* ``__main__``     the ``featurelib`` command: the jobs above in one Click group.
"""
