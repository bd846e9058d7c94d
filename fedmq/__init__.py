"""fedmq: asynchronous federated learning at the edge over MQTT.

This package is the contract that devices and the aggregator share: topics,
messages, the tensor codec, chunking of large models, model specs and errors.
"""

__version__ = "0.1.0"

#: Major version of the wire protocol (the ``v`` field of every envelope).
PROTOCOL_MAJOR = 1
