"""Settings of the ingest service (built only in the entrypoint, passed down)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from pydantic import Field

from leadpipe.runtime.settings import LinkSettings, ServiceSettings

FORMS_DIR = Path(__file__).parent / "forms"


def hash_api_key(key: str) -> str:
    """Scanner API keys are stored only as this hash."""
    return hashlib.sha256(key.encode()).hexdigest()


class IngestSettings(ServiceSettings, LinkSettings):
    ingest_host: str = "127.0.0.1"
    ingest_port: int = 8080
    ingest_forms_dir: Path = FORMS_DIR
    #: name -> sha256(key). The dev default is the hash of "dev-scanner-key".
    ingest_api_keys: dict[str, str] = Field(default_factory=lambda: {"dev-scanner": hash_api_key("dev-scanner-key")})
    #: name -> sha256(key) of the callers allowed to request erasures (a CRM, a DSR tool); not
    #: the scanner keys. The dev default is the hash of "dev-privacy-key".
    ingest_privacy_api_keys: dict[str, str] = Field(
        default_factory=lambda: {"dev-dsr": hash_api_key("dev-privacy-key")}
    )
    #: provider -> HMAC secret. The deployment must set its own.
    ingest_webhook_secrets: dict[str, str] = Field(default_factory=lambda: {"demo": "dev-webhook-secret"})
    ingest_webhook_window_s: float = 300.0
    ingest_max_form_bytes: int = 64_000
    ingest_max_scan_bytes: int = 4_000_000
    ingest_max_webhook_bytes: int = 1_000_000
    #: How long a publish may wait for the broker before the event goes to the local spool.
    ingest_publish_timeout_s: float = 3.0
    ingest_idempotency_ttl_s: int = 24 * 3600
    ingest_scan_dedupe_ttl_s: int = 90 * 24 * 3600
    ingest_trust_forwarded_for: bool = False

    @property
    def spool_path(self) -> Path:
        return self.leadpipe_state_dir / "ingest" / "spool.sqlite3"
