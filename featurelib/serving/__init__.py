"""Online serving: the compiled read path behind the Feast SDK and the feature server.

* ``plan``      resolve a feature list or service once, compile it, validate requests;
* ``reads``     one request of a plan: its keys and ``HMGET`` commands, its replies decoded;
* ``response``  Feast's ``OnlineResponse`` and its HTTP JSON, built from columns;
* ``provider``  the Feast provider named in ``feature_store.yaml`` that routes
                ``get_online_features`` (sync and async) through the plan;
* ``server``    the HTTP feature server (``python feature_utils.py serve``);
* ``observe``   logs and Prometheus counters of the read path.
"""
