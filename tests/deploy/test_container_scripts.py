"""scripts/test-containers.sh when podman cannot run containers: `make test` (--if-usable) says so
plainly and goes on; `make test-containers` fails. A fake podman on PATH stands in for a broken one."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def broken_podman(tmp_path: Path) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "podman"
    fake.write_text('#!/bin/sh\necho "Error: runc create failed: fake podman" >&2\nexit 126\n')
    fake.chmod(0o755)
    return {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "LEADPIPE_CONTAINERS_LOCK": str(tmp_path / "lock"),
    }


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ROOT / "scripts" / "test-containers.sh"), *args],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_make_test_says_plainly_that_the_container_tests_did_not_run_and_why(broken_podman: dict[str, str]):
    result = run(broken_podman, "--if-usable", "--ci")
    assert result.returncode == 0, result.stderr
    assert "containers: podman not usable here: podman image exists fails (exit 126)" in result.stdout
    assert "fake podman" in result.stdout
    assert "the container tests did NOT run" in result.stdout


def test_make_test_containers_fails_when_podman_cannot_run_containers(broken_podman: dict[str, str]):
    result = run(broken_podman)
    assert result.returncode == 1
    assert "containers: podman not usable here: podman image exists fails" in result.stderr


def test_an_unknown_option_is_refused_by_name(broken_podman: dict[str, str]):
    result = run(broken_podman, "--fast")
    assert result.returncode == 2
    assert "unknown option --fast" in result.stderr
