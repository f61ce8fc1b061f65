"""Stack.add_replica: one more replica of a running service, on its own port, in the same stack."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from leadpipe.devstack.stack import Stack

pytestmark = pytest.mark.slow


def test_add_replica_starts_another_process_of_a_running_service_and_rejects_unknown_ones(tmp_path: Path):
    with Stack(tmp_path / "stack", services=["exporter"], partitions=1) as stack:
        assert stack.add_replica("exporter") == 1
        assert stack.replicas["exporter"] == 2
        assert stack.port("exporter", 0) != stack.port("exporter", 1)
        for replica in (0, 1):
            assert stack.procs["exporter"][replica].alive()
            resp = httpx.get(stack.url("exporter", replica) + "/metrics", timeout=10)
            assert resp.status_code == 200
        with pytest.raises(ValueError, match="'scoring' is not running"):
            stack.add_replica("scoring")
