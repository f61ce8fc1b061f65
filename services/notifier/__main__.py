"""``python -m services.notifier``: the notifier worker (ops endpoints on OPS_HOST:OPS_PORT)."""

from __future__ import annotations

from leadpipe.runtime.agents import run_worker
from leadpipe.runtime.keystore import install_from_env
from leadpipe.runtime.logs import setup_logging
from schemas.topics import TopicSpec, dlq_name
from services.notifier.config import NotifierSettings
from services.notifier.worker import build_app


def internal_topics(settings: NotifierSettings) -> list[TopicSpec]:
    """The retry topic is the notifier's own: keyed like the requests, kept a week."""
    week = 7 * 24 * 3600 * 1000
    return [
        TopicSpec(settings.notifier_retry_topic, "lead id", settings.kafka_partitions, retention_ms=week),
        TopicSpec(dlq_name(settings.notifier_retry_topic), "same as the original record", 1, retention_ms=4 * week),
    ]


def main() -> None:
    settings = NotifierSettings()  # from the environment
    setup_logging("notifier", level=settings.log_level, json_logs=settings.log_json)
    install_from_env("notifier")  # privacy hook: the crypto-shredding keyring (docs/privacy.md)
    run_worker(build_app(settings), settings, internal_topics(settings))


if __name__ == "__main__":
    main()
