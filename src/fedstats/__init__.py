"""fedstats: exact federated models from shared sufficient statistics.

The node (engine, store, federation agent, API facades) lives in `fedstats.node`; the
Kubernetes operator in `fedstats.operator`. This top-level package only names the version.
"""

__version__ = "0.1.0"
