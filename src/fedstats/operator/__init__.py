"""The kopf operator: Federation, Peer and PsrContract reconcilers (see operator/README.md).

Importing this package registers nothing with kopf (`handlers` does) and loads none of the
node's numeric stack: the operator reaches nodes through `fedstats.node.client` only.
"""
