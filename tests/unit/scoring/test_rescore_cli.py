"""``leadpipe scoring rescore``: bad input and unreachable services end with a clear error."""

from __future__ import annotations

import pytest

from leadpipe.cli import main
from leadpipe.devstack.processes import free_port


@pytest.fixture(autouse=True)
def _no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL", "SCORING_REDIS_PREFIX", "SCORING_OUTPUT_TOPIC"):
        monkeypatch.delenv(name, raising=False)


def nowhere() -> str:
    return f"127.0.0.1:{free_port()}"


def test_an_unknown_model_version_is_refused_naming_the_known_ones(capsys: pytest.CaptureFixture[str]):
    code = main(["scoring", "rescore", "--model", "fit-2099.1", "--redis-url", f"redis://{nowhere()}/0",
                 "--bootstrap", nowhere()])  # fmt: skip
    assert code == 2
    assert "--model: unknown model version 'fit-2099.1' (known: fit-2026.1, fit-2026.2)" in capsys.readouterr().err


def test_a_missing_setting_is_named_with_its_flag(capsys: pytest.CaptureFixture[str]):
    assert main(["scoring", "rescore", "--model", "fit-2026.2", "--bootstrap", nowhere()]) == 2
    assert "missing setting REDIS_URL (or --redis-url)" in capsys.readouterr().err


def test_an_unreachable_redis_is_an_error_naming_it(capsys: pytest.CaptureFixture[str]):
    url = f"redis://{nowhere()}/0"
    assert main(["scoring", "rescore", "--model", "fit-2026.2", "--dry-run", "--redis-url", url]) == 3
    assert f"Redis at {url} unreachable" in capsys.readouterr().err


def test_a_batch_size_below_one_is_refused(capsys: pytest.CaptureFixture[str]):
    assert main(["scoring", "rescore", "--model", "fit-2026.2", "--batch-size", "0"]) == 2
    assert "--batch-size: must be at least 1" in capsys.readouterr().err
