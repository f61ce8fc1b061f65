"""The environment Stack gives its services: links that leave the pipeline point at its own ingest."""

from __future__ import annotations

from pathlib import Path

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
