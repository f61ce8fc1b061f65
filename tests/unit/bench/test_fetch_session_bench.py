"""bench/fetch_session_bench.py's failure paths: a consumer process that never gets ready stops the
round with its output named, and leaves no process behind; one that fails after it got ready is
named with its exit status (not left to a parse error on what it printed)."""

from __future__ import annotations

import argparse
import os
import sys

import pytest

from bench import fetch_session_bench


def test_a_consumer_that_never_gets_ready_stops_the_round_naming_what_it_said(monkeypatch: pytest.MonkeyPatch):
    started = []
    real_popen = fetch_session_bench.subprocess.Popen

    def consumer_that_fails(cmd, **kwargs):  # type: ignore[no-untyped-def]
        proc = real_popen([sys.executable, "-c", "print('no broker'); import time; time.sleep(60)"], **kwargs)
        started.append(proc)
        return proc

    monkeypatch.setattr(fetch_session_bench.subprocess, "Popen", consumer_that_fails)
    a = argparse.Namespace(partitions=6, records=10, rate=50.0)
    with pytest.raises(RuntimeError, match="did not get ready: 'no broker"):
        fetch_session_bench.one_round("127.0.0.1:1", 1, ["t"], a, sessions=True)
    (proc,) = started
    assert proc.poll() is not None  # killed, not left running


def test_a_consumer_that_fails_after_getting_ready_is_named_with_its_exit_status(monkeypatch: pytest.MonkeyPatch):
    real_popen = fetch_session_bench.subprocess.Popen

    def consumer_that_crashes(cmd, **kwargs):  # type: ignore[no-untyped-def]
        return real_popen([sys.executable, "-c", "print('ready', flush=True); raise SystemExit(3)"], **kwargs)

    async def no_load(*_args: object) -> None:
        return None

    monkeypatch.setattr(fetch_session_bench.subprocess, "Popen", consumer_that_crashes)
    monkeypatch.setattr(fetch_session_bench, "produce", no_load)
    a = argparse.Namespace(partitions=6, records=10, rate=50.0)
    with pytest.raises(RuntimeError, match=r"the consumer \(sessions off\) failed \(3\)"):
        fetch_session_bench.one_round("127.0.0.1:1", os.getpid(), ["t"], a, sessions=False)
