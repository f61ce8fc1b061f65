"""Scoring settings, from the environment (built only in the entrypoint)."""

from __future__ import annotations

from pathlib import Path

from leadpipe.runtime.settings import ServiceSettings
from schemas.topics import consumer_group
from services.scoring.adapters.reference_files import DATA_DIR, DEFAULT_MODEL, MODELS_DIR


class ScoringSettings(ServiceSettings):
    ops_host: str = "127.0.0.1"
    ops_port: int = 9101
    #: The model used while no active version is recorded in Redis (``<prefix>model``, set by
    #: ``leadpipe scoring rescore``); once recorded, every worker scores with that version,
    #: looked up as ``<scoring_models_dir>/<version>.yaml``.
    scoring_model_path: Path = DEFAULT_MODEL
    scoring_models_dir: Path = MODELS_DIR
    scoring_data_dir: Path = DATA_DIR
    scoring_served_area_path: Path | None = None
    scoring_redis_prefix: str = "scoring:"
    #: Events handled together: one Redis round trip and one producer flush per batch.
    scoring_batch_max: int = 500
    scoring_batch_within_s: float = 0.02
    scoring_group_id: str = consumer_group("scoring")
    scoring_input_topics: str = "lead.captured.v1,lead.engagement.v1"
    scoring_output_topic: str = "lead.scored.v1"
    scoring_erasure_topic: str = "person.erasure_requested.v1"
    #: The compacted topic every lead state is appended to; a wiped Redis is rebuilt from it.
    scoring_state_topic: str = "scoring.state.v1"
