"""Operator tooling over the pipeline's Kafka topics: reading, dead letters, consumer lag.

Used by the ``leadpipe`` CLI (``tail``, ``dlq``, ``lag``, ``canary``) and by the metrics
exporter. Everything talks to the broker through aiokafka with the same client options as
the services (``KAFKA_*`` environment variables).

Exceptions::

    OpsError              an operator request that cannot be carried out (message says why)
     └── UnknownTopic     a topic that is not in the registry / not on the broker
"""

from __future__ import annotations


class OpsError(Exception):
    """An operator request that cannot be carried out; the message names the problem."""


class UnknownTopic(OpsError):
    """The topic named is not known to the registry or the broker."""
