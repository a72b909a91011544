"""Compatibility package: the reference's `xdata_fl` import path for fedstats' model store
client, so the reference's own examples (`from xdata_fl.client import Api, set_logger`)
run unchanged. Everything is `fedstats.node.modelstore_client`."""
