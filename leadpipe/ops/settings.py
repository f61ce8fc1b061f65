"""Settings of the operator tools: the broker address and client security from the environment."""

from __future__ import annotations

from pydantic import Field

from leadpipe.runtime.settings import ServiceSettings
from schemas.topics import consumer_group


class OpsSettings(ServiceSettings):
    """Like a service's settings, but the operator tools never touch Redis."""

    redis_url: str = Field(default="", description="unused by the operator tools")
    #: The consumer group whose committed offsets mark how far each dead-letter topic was replayed.
    dlq_replay_group: str = consumer_group("dlq-replay")


def settings_for(bootstrap: str | None) -> OpsSettings:
    """Settings from the environment, with ``--bootstrap`` taking precedence when given."""
    if bootstrap:
        return OpsSettings(kafka_bootstrap_servers=bootstrap)
    return OpsSettings()  # KAFKA_BOOTSTRAP_SERVERS from the environment
