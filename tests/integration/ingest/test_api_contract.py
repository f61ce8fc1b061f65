"""The OpenAPI contract integrators generate clients from holds against the live app.

schemathesis (its own CLI, as an integrator would run it) reads ``/openapi.json`` from a real
``python -m services.ingest`` process on the session broker and Redis, and fuzzes every
operation with positive and negative data under every default check: status codes, content
types, headers, response schemas, auth, schema-valid data accepted and schema-invalid data
refused. ``schemathesis.toml`` next to this file gives the scanner and privacy keys and the one
check excluded for one route, with the reason; ``schemathesis_hooks.py`` makes valid phone
numbers for the contract's ``phone`` format.

Bounded to a couple of examples per operation and a fixed seed so the suite stays fast and
repeatable. The full run (every phase, including the coverage phase's boundary values and
unsupported methods) is ``make api-contract`` style by hand:
``SCHEMATHESIS_HOOKS=tests.integration.ingest.schemathesis_hooks st --config-file
tests/integration/ingest/schemathesis.toml run http://127.0.0.1:8080/openapi.json``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.integration.ingest.conftest import ROOT, running_ingest

HERE = Path(__file__).parent


def test_the_live_api_keeps_every_promise_of_its_openapi_contract(tmp_path: Path, registry_topics: str, redis_url: str):
    env = os.environ | {
        "SCHEMATHESIS_HOOKS": "tests.integration.ingest.schemathesis_hooks",
        "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
    st = Path(sys.executable).parent / "st"
    with running_ingest(tmp_path, registry_topics, redis_url) as url:
        done = subprocess.run(
            [str(st), "--config-file", str(HERE / "schemathesis.toml"), "run", f"{url}/openapi.json",
             "--phases", "fuzzing", "--max-examples", "2", "--seed", "1", "--workers", "1", "--no-color"],
            capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path,
        )  # fmt: skip
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert "11 selected / 11 total" in done.stdout  # every operation was tested
