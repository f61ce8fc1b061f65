"""Storage limits applied by the broker: topic retention where topics are created.

- Raw captures (``lead.captured.v1``, ``lead.engagement.v1`` and their DLQs) are kept no longer
  than ``LEADPIPE_RETENTION_RAW_CAPTURE_DAYS`` (90 days; scoring reads them within seconds, so
  this is "90 days after scoring"). The registry's own retention (14 days) is kept when shorter.
- Compacted state topics get ``max.compaction.lag.ms`` and ``segment.ms`` of
  ``LEADPIPE_STATE_COMPACTION_LAG_HOURS`` (24 h): an older state of a lead (a tombstoned one
  included) is compacted away within that bound instead of whenever the cleaner gets to it.

Lead profiles themselves (Redis, state topics) expire through the retention sweep
(``leadpipe scoring sweep``), logs through the sweep's ``--logs-dir`` or the log platform.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.topics import TopicSpec

RAW_CAPTURE_TOPICS = frozenset({"lead.captured.v1", "lead.engagement.v1"})
DAY_MS = 24 * 3600 * 1000


class RetentionSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    leadpipe_retention_raw_capture_days: float = Field(default=90.0, gt=0)
    leadpipe_state_compaction_lag_hours: float = Field(default=24.0, gt=0)


def topic_config(spec: TopicSpec, settings: RetentionSettings | None = None) -> dict[str, str]:
    """The configs to create ``spec`` with: the registry's, within the storage limits."""
    limits = settings or RetentionSettings()
    config = dict(spec.config)
    if spec.name in RAW_CAPTURE_TOPICS or spec.dead_letter_of in RAW_CAPTURE_TOPICS:
        limit = int(limits.leadpipe_retention_raw_capture_days * DAY_MS)
        current = int(config.get("retention.ms", "-1"))
        config["retention.ms"] = str(limit if current < 0 else min(current, limit))
    if "compact" in spec.cleanup_policy:
        lag = str(int(limits.leadpipe_state_compaction_lag_hours * 3600 * 1000))
        config["max.compaction.lag.ms"] = lag
        config["segment.ms"] = lag
    return config
