"""The topic registry: every topic the pipeline uses, its dead-letter twin, who consumes it, and
the consumer group each consuming service commits its offsets under.

Workers and deploy files take topic names, subscriptions and group names from here
(``subscriptions("nurture")``, ``consumer_group("nurture")``) instead of spelling them out;
``tests/deploy/test_consumer_groups.py`` checks compose, Kubernetes and KEDA files against it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from schemas.base import Payload
from schemas.catalog import PAYLOADS


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """A topic: its name, what the record key is, partitions and cleanup policy."""

    name: str
    key: str
    partitions: int
    cleanup_policy: str = "delete"
    retention_ms: int = 14 * 24 * 3600 * 1000
    event_type: str | None = None
    dead_letter_of: str | None = None
    consumed_by: tuple[str, ...] = field(default=())

    @property
    def config(self) -> dict[str, str]:
        return {"cleanup.policy": self.cleanup_policy, "retention.ms": str(self.retention_ms)}


DEFAULT_PARTITIONS = 6
DEFAULT_RETENTION_MS = 14 * 24 * 3600 * 1000

_CONSUMERS: dict[str, tuple[str, ...]] = {
    "lead.captured": ("scoring",),
    "lead.engagement": ("scoring", "notifier"),
    "lead.scored": ("nurture",),
    "notification.outcome": ("nurture",),
    "assignment.response": ("nurture",),
    "lead.outcome_logged": ("nurture",),
    "notification.requested": ("notifier",),
    "lead.stage_changed": (),
    "lead.assigned": (),
    "person.erasure_requested": ("scoring", "nurture", "notifier"),
    "person.erased": (),
}

#: Read models that project topics but dead-letter nothing (a record they cannot read is counted,
#: logged and skipped: the producing side's dead-letter topic deals with it), so their topics get no
#: ``.dlq`` twin on their account.
_PROJECTIONS: dict[str, tuple[str, ...]] = {
    "console": (
        "lead.captured",
        "lead.scored",
        "lead.stage_changed",
        "lead.assigned",
        "assignment.response",
        "notification.outcome",
        "lead.engagement",
        "lead.outcome_logged",
        "notification.requested",
        "person.erasure_requested",
    ),
}

#: service -> the Kafka consumer group it commits offsets under (for the Faust workers, the app
#: id). The one naming scheme: a group is named here and nowhere else; configs default to these,
#: deploy files are checked against them. New groups are ``leadpipe-<service>``; ``notifier`` and
#: ``console`` predate that and keep their names, because renaming a group forfeits its committed
#: offsets (and, for a Faust app, its internal topics): it is a migration, not a rename.
CONSUMER_GROUPS: dict[str, str] = {
    "scoring": "leadpipe-scoring",
    "nurture": "leadpipe-nurture",
    "notifier": "notifier",
    "console": "console",
    "dlq-replay": "leadpipe-dlq-replay",
}


class UnknownService(KeyError):
    """A service name that has no consumer group or subscriptions in the registry."""


def consumer_group(service: str) -> str:
    """The consumer group ``service`` commits its offsets under."""
    try:
        return CONSUMER_GROUPS[service]
    except KeyError:
        raise UnknownService(f"no consumer group for service {service!r}; known: {sorted(CONSUMER_GROUPS)}") from None


def topic_of(payload: type[Payload]) -> str:
    """The topic an event model travels on (``lead.captured.v1``)."""
    return payload.topic()


def subscriptions(service: str) -> tuple[str, ...]:
    """The event topics ``service`` consumes, in catalog order (``subscriptions("scoring")`` is
    ``("lead.captured.v1", "lead.engagement.v1", "person.erasure_requested.v1")``)."""
    known = {s for consumers in _CONSUMERS.values() for s in consumers} | set(_PROJECTIONS)
    if service not in known:
        raise UnknownService(f"service {service!r} consumes no topic; known: {sorted(known)}")
    projected = _PROJECTIONS.get(service, ())
    return tuple(p.topic() for p in PAYLOADS if service in _CONSUMERS[p.EVENT_TYPE] or p.EVENT_TYPE in projected)


def subscribed_models(service: str) -> dict[str, type[Payload]]:
    """topic -> the (current) event model ``service`` expects on it."""
    by_topic = {p.topic(): p for p in PAYLOADS}
    return {topic: by_topic[topic] for topic in subscriptions(service)}


_KEYS: dict[str, str] = {
    "lead.captured": "identity key (normalised email, else phone, else show+badge)",
    "lead.engagement": "identity key (normalised email, else phone)",
    "person.erasure_requested": "subject hash (keyed hash of the first identifier)",
    "person.erased": "subject hash (keyed hash of the first identifier)",
}

#: An erasure request names the person in clear; it only needs to live until every service
#: honoured it, so its topic (and dead letters) keep one day. Receipts hold no personal data and
#: are the lasting record of the erasure (the notifier rebuilds its erased list from them): kept.
_RETENTION_MS: dict[str, int] = {"person.erasure_requested": 24 * 3600 * 1000, "person.erased": -1}
_DLQ_RETENTION_MS: dict[str, int] = {"person.erasure_requested": 24 * 3600 * 1000}


#: Compacted state topics: a service's copy of its Redis state, keyed by lead id (latest wins),
#: kept forever; a wiped Redis is rebuilt from it. Not events: no payload schema, no consumer group.
_STATE_TOPICS: dict[str, str] = {
    "scoring.state.v1": "lead id (a lead state; a tombstone once merged away; the active model version)",
}


def dlq_name(topic: str) -> str:
    return f"{topic}.dlq"


def _registry(partitions: int) -> dict[str, TopicSpec]:
    specs: dict[str, TopicSpec] = {}
    for payload in PAYLOADS:
        consumers = _CONSUMERS[payload.EVENT_TYPE]
        spec = TopicSpec(
            name=payload.topic(),
            key=_KEYS.get(payload.EVENT_TYPE, "lead id"),
            partitions=partitions,
            event_type=payload.ce_type(),
            consumed_by=consumers,
            retention_ms=_RETENTION_MS.get(payload.EVENT_TYPE, DEFAULT_RETENTION_MS),
        )
        specs[spec.name] = spec
        if consumers:
            dlq = TopicSpec(
                name=dlq_name(spec.name),
                key="same as the original record",
                partitions=1,
                retention_ms=_DLQ_RETENTION_MS.get(payload.EVENT_TYPE, 30 * 24 * 3600 * 1000),
                dead_letter_of=spec.name,
            )
            specs[dlq.name] = dlq
    for name, key in _STATE_TOPICS.items():
        specs[name] = TopicSpec(name=name, key=key, partitions=partitions, cleanup_policy="compact", retention_ms=-1)
    return specs


def registry(partitions: int = DEFAULT_PARTITIONS) -> dict[str, TopicSpec]:
    """All topics by name; ``partitions`` sets the count for the event topics."""
    return _registry(partitions)


TOPICS: dict[str, TopicSpec] = registry()
