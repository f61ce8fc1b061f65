"""The environment Stack gives its services: links that leave the pipeline point at its own ingest;
on a one-node cluster of its own the clients refresh metadata rarely."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from leadpipe.devstack.stack import Stack


def test_services_link_to_this_stacks_ingest_unless_the_environment_names_a_public_url(tmp_path: Path):
    stack = Stack(tmp_path / "a", services=["ingest", "nurture", "notifier"], ports="free")
    assert "LEADPIPE_PUBLIC_URL" not in stack.env_for("nurture")  # no ingest port chosen yet
    stack._ports = {"ingest": [18123], "nurture": [19102]}
    assert stack.env_for("nurture")["LEADPIPE_PUBLIC_URL"] == "http://127.0.0.1:18123"
    assert stack.env_for("notifier", replica=1)["LEADPIPE_PUBLIC_URL"] == "http://127.0.0.1:18123"

    public = Stack(tmp_path / "b", services=["ingest"], env={"LEADPIPE_PUBLIC_URL": "https://leads.example.com"})
    public._ports = {"ingest": [18124]}
    assert public.env_for("ingest")["LEADPIPE_PUBLIC_URL"] == "https://leads.example.com"


def test_on_its_own_one_node_cluster_clients_refresh_metadata_once_a_minute_unless_told_otherwise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.delenv("KAFKA_METADATA_MAX_AGE_MS", raising=False)
    assert Stack(tmp_path / "one").env_for("scoring")["KAFKA_METADATA_MAX_AGE_MS"] == "60000"
    assert "KAFKA_METADATA_MAX_AGE_MS" not in Stack(tmp_path / "three", brokers=3).env_for("scoring")
    assert "KAFKA_METADATA_MAX_AGE_MS" not in Stack(tmp_path / "ext", bootstrap="127.0.0.1:9092").env_for("scoring")
    chosen = Stack(tmp_path / "env", env={"KAFKA_METADATA_MAX_AGE_MS": "5000"})
    assert chosen.env_for("scoring")["KAFKA_METADATA_MAX_AGE_MS"] == "5000"
    monkeypatch.setenv("KAFKA_METADATA_MAX_AGE_MS", "7000")
    assert "KAFKA_METADATA_MAX_AGE_MS" not in Stack(tmp_path / "os").env_for("scoring")  # inherited as set


def test_where_no_bytecode_is_kept_services_keep_theirs_beside_the_tools_unless_told_where(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.delenv("PYTHONPYCACHEPREFIX", raising=False)
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    monkeypatch.setenv("LEADPIPE_TOOLS_DIR", str(tmp_path / "tools"))
    env = Stack(tmp_path / "s").env_for("nurture", replica=1)
    assert env["PYTHONPYCACHEPREFIX"] == str(tmp_path / "pycache")
    assert env["PYTHONDONTWRITEBYTECODE"] == ""  # Python reads an empty value as unset
    monkeypatch.setenv("PYTHONPYCACHEPREFIX", str(tmp_path / "mine"))
    env = Stack(tmp_path / "t").env_for("nurture")
    assert "PYTHONPYCACHEPREFIX" not in env and "PYTHONDONTWRITEBYTECODE" not in env  # inherited as set
    monkeypatch.delenv("PYTHONPYCACHEPREFIX")
    monkeypatch.delenv("PYTHONDONTWRITEBYTECODE")
    env = Stack(tmp_path / "u").env_for("nurture")
    assert "PYTHONPYCACHEPREFIX" not in env and "PYTHONDONTWRITEBYTECODE" not in env  # Python's own __pycache__


def test_a_service_started_with_that_environment_writes_its_bytecode_there(tmp_path: Path):
    module = tmp_path / "src" / "probe_mod.py"
    module.parent.mkdir()
    module.write_text("VALUE = 1\n")
    env = {
        "PYTHONPATH": str(module.parent),
        "PYTHONDONTWRITEBYTECODE": "",
        "PYTHONPYCACHEPREFIX": str(tmp_path / "pyc"),
    }
    subprocess.run([sys.executable, "-c", "import probe_mod"], env=env, check=True, timeout=60)
    assert list((tmp_path / "pyc").rglob("probe_mod*.pyc"))
    assert not (module.parent / "__pycache__").exists()
