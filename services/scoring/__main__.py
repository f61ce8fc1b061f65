"""``python -m services.scoring``: run the scoring worker (configuration from the environment)."""

from __future__ import annotations

from leadpipe.runtime.agents import run_worker
from leadpipe.runtime.keystore import install_from_env
from leadpipe.runtime.logs import setup_logging
from services.scoring.config import ScoringSettings
from services.scoring.worker import build_app


def main() -> None:
    settings = ScoringSettings()
    setup_logging("scoring", level=settings.log_level, json_logs=settings.log_json)
    install_from_env("scoring")  # privacy hook: the crypto-shredding keyring (docs/privacy.md)
    app = build_app(settings)
    run_worker(app, settings)


if __name__ == "__main__":
    main()
