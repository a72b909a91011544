"""The xData-style model store below its JSON-RPC facade (`api/jsonrpc`): stores of model
bytes on the node's volume, upstreams over signed HTTP, and the exact aggregation of
fedstats snapshots (docs/modelstore.md). It sits beside the project service in the layers."""
