"""``python -m services.nurture``: run the nurture worker (configuration from the environment)."""

from __future__ import annotations

from leadpipe.runtime.agents import run_worker
from leadpipe.runtime.keystore import install_from_env
from leadpipe.runtime.logs import setup_logging
from leadpipe.runtime.service import park_topic_spec
from services.nurture.bootstrap import PARK_TOPIC, load_engine
from services.nurture.config import NurtureSettings
from services.nurture.worker import build_app


def main() -> None:
    settings = NurtureSettings()
    setup_logging("nurture", level=settings.log_level, json_logs=settings.log_json)
    install_from_env("nurture")  # privacy hook: the crypto-shredding keyring (docs/privacy.md)
    load_engine(settings)  # a bad playbook or directory stops the worker here, naming the field
    app = build_app(settings)
    run_worker(app, settings, [park_topic_spec(settings.topic(PARK_TOPIC), settings.kafka_partitions)])


if __name__ == "__main__":
    main()
