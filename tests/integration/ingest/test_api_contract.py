"""The OpenAPI contract integrators generate clients from holds against the live app.

schemathesis reads ``/openapi.json`` from a real ``python -m services.ingest`` process on the
session broker and Redis, and fuzzes every operation with positive and negative data under
every default check: status codes, content types, headers, response schemas, auth,
schema-valid data accepted and schema-invalid data refused. ``schemathesis.toml`` next to
this file gives the scanner and privacy keys and the one check excluded for one route, with
the reason; ``schemathesis_hooks.py`` makes valid phone numbers for the contract's ``phone``
format and a fresh Idempotency-Key per batch.

Bounded to two examples per operation with a fixed seed, so the suite stays fast and
repeatable. The full run (every phase, including the coverage phase's boundary values and
unsupported methods) is in docs/ingest-sources.md.
"""

from __future__ import annotations

from pathlib import Path

import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import events, from_schema

import tests.integration.ingest.schemathesis_hooks  # noqa: F401  (registers the hooks)
from tests.integration.ingest.conftest import running_ingest

CONFIG = Path(__file__).parent / "schemathesis.toml"


def contract_failures(url: str) -> tuple[list[str], set[str]]:
    """Each failed check (operation, check, what and how to reproduce), and the operations tested."""
    config = SchemathesisConfig.from_path(str(CONFIG))
    config.update(seed=1, max_failures=None)
    project = config.projects.default
    project.update(base_url=url, workers=1)
    for phase in (project.phases.examples, project.phases.coverage, project.phases.stateful):
        phase.enabled = False
    project.generation.update(max_examples=2)
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json", config=config)
    failures: list[str] = []
    tested: set[str] = set()
    for event in from_schema(schema).execute():
        if isinstance(event, events.FatalError | events.NonFatalError):
            failures.append(f"schemathesis error: {event}")
        if not isinstance(event, events.ScenarioFinished):
            continue
        tested.add(event.recorder.label)
        for checks in event.recorder.checks.values():
            for check in checks:
                if check.failure_info is not None:
                    info = check.failure_info
                    failures.append(f"{event.recorder.label}: {check.name}: {info.failure.title}\n"
                                    f"  {info.failure.message}\n  {info.code_sample}")  # fmt: skip
    return failures, tested


def test_the_live_api_keeps_every_promise_of_its_openapi_contract(tmp_path: Path, registry_topics: str, redis_url: str):
    with running_ingest(tmp_path, registry_topics, redis_url) as url:
        failures, tested = contract_failures(url)
    assert not failures, "\n".join(failures)
    assert len(tested) == 11, tested  # every operation of the contract
