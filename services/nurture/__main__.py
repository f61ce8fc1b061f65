"""``python -m services.nurture``: run the nurture worker (configuration from the environment)."""

from __future__ import annotations

import sys

from leadpipe.runtime.keystore import install_from_env
from leadpipe.runtime.logs import setup_logging
from services.nurture.config import NurtureSettings
from services.nurture.worker import build_app, load_engine


def main() -> None:
    settings = NurtureSettings()
    setup_logging("nurture", level=settings.log_level, json_logs=settings.log_json)
    install_from_env("nurture")  # privacy hook: the crypto-shredding keyring (docs/privacy.md)
    load_engine(settings)  # a bad playbook or directory stops the worker here, naming the field
    app = build_app(settings)
    level = {"WARNING": "warn", "CRITICAL": "crit"}.get(settings.log_level.upper(), settings.log_level.lower())
    sys.argv = [sys.argv[0], "worker", "--loglevel", level, "--without-web"]
    app.main()


if __name__ == "__main__":
    main()
