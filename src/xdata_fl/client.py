"""`from xdata_fl.client import Api, set_logger, FlEvents`: fedstats' model store client."""

from fedstats.node.modelstore_client import Api, FlError, FlEvents, set_logger

__all__ = ["Api", "FlError", "FlEvents", "set_logger"]
