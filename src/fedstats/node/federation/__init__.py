"""Federation over NATS JetStream: contracts, schedules, wire format, agents, the hub.

Nothing here knows HTTP: the node's composition root (`api/app.py`) opens the `Hub`
(`<data_dir>/federation.sqlite`), registers it as the project service's source of peers'
statistics and delete listener, starts and stops it with the app, and mounts the REST
facade (`api/fedml.py`); the one error mapping (`api/errors.py`) reads this package's
error types (`errors.py`) for their statuses. What the federation needs of the project
service is the `ports.ProjectPort` protocol.
"""
