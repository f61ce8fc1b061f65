"""The settings every service has; each service's ``config.py`` subclasses this.

- ``ServiceSettings``: infrastructure, logging, the deployment's environment. With
  ``LEADPIPE_ENV=production`` it refuses to start while any secret setting still holds a
  development value (``dev-...``, the ``CHANGE-ME`` placeholders of deploy/k8s/config.yml, or a
  value the class lists in ``DEV_ONLY_VALUES``), naming every such setting.
- ``RedisClientSettings``: how the asyncio Redis clients behave (automatic pipelining).
- ``LinkSettings``: the one block for links that leave the pipeline (the link-signing secret,
  the public base URL, the assignment-link lifetime); the services that make or serve links
  (ingest, nurture, notifier) mix it in, so the secret is configured once.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Values no production secret may start with: the development defaults and the placeholders.
DEV_SECRET_PREFIXES = ("dev-", "CHANGE-ME")
#: A setting whose name ends so holds a secret (or a map of them) and gets the production check.
SECRET_SUFFIXES = ("_secret", "_secrets", "_token", "_password", "_key", "_keys", "_hashes")


class DevSecretInProduction(ValueError):
    """``LEADPIPE_ENV=production`` with a secret setting still at a development value."""

    def __init__(self, settings: list[str]):
        super().__init__(
            f"LEADPIPE_ENV=production refuses development secrets: set your own {', '.join(settings)} "
            f"(a value starting with {' or '.join(DEV_SECRET_PREFIXES)}, or a shipped development default, "
            "is refused)"
        )
        self.settings = settings


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, SecretStr):
        yield value.get_secret_value()
    elif isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(key)
            yield from _strings(item)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            yield from _strings(item)


class LinkSettings(BaseSettings):
    """Signed links that leave the pipeline: rep accept/decline links (nurture makes them, ingest
    serves them) and unsubscribe links (the notifier makes them, ingest serves them). See
    ``schemas/links.py``."""

    # Settings errors never echo their input: it holds secrets.
    model_config = SettingsConfigDict(env_prefix="", extra="ignore", hide_input_in_errors=True)

    #: Signs every link token (HMAC-SHA256). The dev default is refused in production.
    leadpipe_link_secret: str = "dev-link-secret"
    #: The base of every link that leaves the pipeline (ingest's public address).
    leadpipe_public_url: str = "http://127.0.0.1:8080"
    #: How long a rep's accept/decline link stays valid.
    link_ttl_s: float = Field(default=7 * 86400, gt=0)


class RedisClientSettings(BaseSettings):
    """How the services' asyncio Redis clients behave (``redis_client.redis_client``); mixed into
    ``ServiceSettings`` and the key store's settings, so one variable sets both."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", hide_input_in_errors=True)

    # Commands awaited in the same event-loop tick go to Redis as one pipeline (one write, one
    # read, one connection checkout): under load a worker's concurrent handlers share round
    # trips. Off (``REDIS_AUTOPIPELINE=false``): one round trip per command, for A/B benchmarks.
    redis_autopipeline: bool = True


class ServiceSettings(RedisClientSettings):
    """Infrastructure addresses come from the environment (no defaults: the embedded dev stack
    or the deployment supplies them)."""

    # Settings errors never echo their input: it holds secrets.
    model_config = SettingsConfigDict(env_prefix="", extra="ignore", hide_input_in_errors=True)

    #: Secret values that are development defaults but do not look it (a shipped password hash).
    DEV_ONLY_VALUES: ClassVar[frozenset[str]] = frozenset()

    #: ``production`` turns on the startup checks (no development secrets).
    leadpipe_env: Literal["development", "production"] = "development"

    kafka_bootstrap_servers: str = Field(description="host:port[,host:port], e.g. 127.0.0.1:9092")
    redis_url: str = Field(description="redis://host:port/db")
    leadpipe_state_dir: Path = Field(default=Path(".leadpipe"))
    # Idempotent producers (acks=all): a retried send after a lost ack is not written twice.
    kafka_enable_idempotence: bool = True
    # acks=all: a record is acknowledged once every in-sync replica has it. Anything weaker can
    # lose records Kafka acknowledged (and so leads ingest answered 202 for) when a leader dies;
    # the setting exists so the chaos suite can show that (tests/chaos: leader_cut_off).
    kafka_acks: Literal["all", "1", "0"] = "all"
    # How long a crashed worker's partitions wait before moving to a live one: the session
    # timeout. Kafka's client default is 45 s; 10 s moves them sooner (the chaos suite's kill -9
    # of a worker recovers in about 12 s instead of about 47 s) at the price of a rebalance when a
    # worker stalls for 10 s. Production: 30 s (docs/operations.md).
    kafka_rebalance_timeout_s: float = 10.0
    kafka_session_timeout_s: float = 10.0
    # How often a consumer (a Faust worker's or a plain one) heartbeats its group (a rebalance reaches the other
    # members with their next heartbeat). Each is a broker request: at 1 s the three workers'
    # heartbeats were half of what an idle stack asked of its broker (bench/idle_bench.py). Every
    # 3 s is Kafka's own default and rule (a third of the session timeout); its price is up to 2 s
    # more before the others take over a member that left (a dead one waits for the session timeout).
    kafka_heartbeat_interval_s: float = Field(default=3.0, gt=0)
    kafka_max_record_bytes: int = 1_000_000
    # How long a producer holds a record for others to share its produce request (aiokafka's
    # linger). 0: a record goes out at once, and what is sent while a request is in flight (one
    # per broker) goes together in the next, so requests batch themselves under load at no added
    # latency. The services send what goes together (a batch's outputs, its state appends) in
    # one go. A linger above 0 adds up to that much latency per hop and splits such a send: aiokafka
    # lingers each partition's batch from its own first record and sends only the batches whose
    # linger is over, so the partitions of one send went out in two or more requests (scoring,
    # at 100 forms/s: about 2 requests per batch for its outputs and 1.35 for its state appends
    # with its 5 ms linger, 1 and 1 at 0; bench/results/issue13-round13).
    kafka_linger_ms: int = Field(default=0, ge=0, le=1_000)
    # A consumer's longest fetch wait while some partition is left out of its fetch. Kafka
    # answers a fetch as soon as a record arrives, but not for a partition the fetch left out.
    kafka_fetch_max_wait_ms: int = Field(default=500, ge=1, le=30_000)
    # ...and its longest wait when the fetch covers every assigned partition (none left out
    # because its records are still being processed): Kafka answers as soon as a record arrives
    # on any of them, so it costs no latency and spares the broker an idle consumer's empty
    # answers (aiokafka_compat.long_poll_when_caught_up). A long poll holds up nothing else:
    # fetches have a connection of their own (an offsets request waited for the poll's end
    # before), and a rebalance that abandons one drops that connection (a taken-over partition
    # waited 7 s of an 8 s poll before); tests/integration/test_fetch_long_poll.py.
    kafka_fetch_idle_wait_ms: int = Field(default=10_000, ge=1, le=30_000)
    # Consumers fetch in incremental fetch sessions (KIP-227; aiokafka_compat.FetchSession): after
    # the first, a fetch lists only the partitions whose offset moved, and its answer only those
    # with something new, instead of every assigned partition (a worker has 36 or 37) each time.
    # false: every fetch lists every partition, as aiokafka does.
    kafka_fetch_sessions: bool = True
    # How old the clients' cluster metadata (partition leaders) may get before it is refreshed.
    # aiokafka's default is 5 minutes: after a broker rejoined, a client that kept the old leader
    # (and was not told NotLeaderForPartition on the path it uses) stayed stuck for minutes. A
    # refresh is one small request per client: every 5 s costs nothing measurable.
    kafka_metadata_max_age_ms: int = Field(default=5_000, ge=500, le=300_000)
    # How long a worker's partition may have records waiting, none of them queued or being
    # processed and no progress, before the worker restarts its delivery (runtime.delivery).
    # A busy or back-pressured partition is never restarted, whatever its wait.
    kafka_delivery_stall_s: float = Field(default=30.0, gt=0, le=3_600)
    # A Faust worker's Kafka consumer runs in the worker's own event loop, not in Faust's consumer
    # thread (faust_compat._InLoopConsumerThread): no cross-thread handoff per fetch and commit.
    # bench/results/issue13-inloop: CPU per lead at 100 forms/s 33.4 and 34.2 -> 29.9 and 29.2 ms,
    # the idle workers about a quarter cheaper. false: Faust's thread, as before.
    kafka_consumer_in_loop: bool = True
    # A Faust worker runs on uvloop (libuv's event loop, as ingest's HTTP server does) instead of
    # asyncio's own: its callbacks, timers and socket reads and writes cost less per event.
    # bench/results/issue13-uvloop: the three workers 13.05 and 13.19 -> 11.59 and 12.60 CPU ms
    # per lead at 100 forms/s (alternating runs). false: asyncio's loop.
    worker_uvloop: bool = True
    # The garbage collector's young threshold (CPython's default 700); once built, a service
    # freezes its start-up objects so full collections never walk them again (runtime.heap).
    # 0: CPython's defaults, nothing frozen.
    gc_young_threshold: int = Field(default=10_000, ge=0, le=1_000_000)
    kafka_partitions: int = 6
    # How long a consumer keeps retrying an event that refers to something it has not seen yet
    # (``stream.NotYet``: nurture's outcome before its lead's state) before dead-lettering it.
    consumer_park_for_s: float = Field(default=300.0, gt=0, le=7 * 24 * 3600)
    kafka_replication_factor: int = 1
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_sasl_mechanism: str | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: str | None = None
    # Keys the one-way hashes an erased person is remembered by (docs/privacy.md). Shared by
    # every service and the privacy CLI; a deployment must set its own and never rotate it
    # without re-hashing the suppression list.
    leadpipe_privacy_secret: str = "dev-privacy-secret"
    log_level: str = "INFO"
    log_json: bool = True

    def development_secrets(self) -> list[str]:
        """The secret settings (by environment variable) that still hold a development value."""
        found = []
        for name in sorted(type(self).model_fields):
            if not name.endswith(SECRET_SUFFIXES):
                continue
            values = list(_strings(getattr(self, name)))
            if any(v.startswith(DEV_SECRET_PREFIXES) or v in self.DEV_ONLY_VALUES for v in values):
                found.append(name.upper())
        return found

    @model_validator(mode="after")
    def _no_development_secrets_in_production(self) -> ServiceSettings:
        if self.leadpipe_env == "production" and (found := self.development_secrets()):
            raise DevSecretInProduction(found)
        return self
