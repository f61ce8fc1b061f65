"""``free_port`` never hands out a port twice in one process, even when the kernel offers it again
(two stack parts given one port: the second fails to start); nor a port another process holds
(parallel test lanes), and it takes them below the kernel's ephemeral range."""

from __future__ import annotations

import socket
import subprocess
import sys
from typing import Any

import pytest

from leadpipe.devstack import processes
from leadpipe.devstack.processes import free_port


class Offers:
    """A socket whose bind to port 0 gets the next port of ``ports``."""

    def __init__(self, ports: list[int]):
        self.ports = ports

    def __call__(self, *_: Any) -> Any:
        offers = self

        class Sock:
            def __enter__(self) -> Any:
                return self

            def __exit__(self, *_: Any) -> None: ...

            def bind(self, address: tuple[str, int]) -> None:
                self.port = offers.ports.pop(0)

            def getsockname(self) -> tuple[str, int]:
                return ("127.0.0.1", self.port)

        return Sock()


def test_a_port_the_kernel_offers_again_is_not_handed_out_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(processes, "_ephemeral_low", lambda: None)  # no room below it: bind(0)
    monkeypatch.setattr(processes, "_handed_out", set())
    monkeypatch.setattr(socket, "socket", Offers([41001, 41001, 41001, 41002]))
    assert [free_port(), free_port()] == [41001, 41002]


def test_it_gives_up_with_a_clear_error_when_the_kernel_offers_nothing_new(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(processes, "_ephemeral_low", lambda: None)
    monkeypatch.setattr(processes, "_handed_out", {41001})
    monkeypatch.setattr(socket, "socket", Offers([41001] * 1000))
    with pytest.raises(RuntimeError, match="offered no port"):
        free_port()


def test_real_ports_are_distinct_free_and_below_the_ephemeral_range() -> None:
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == 50
    assert all(processes.port_is_free(p) for p in ports)
    low = processes._ephemeral_low()
    if low is not None and low - processes._FIRST_PORT >= 1000:
        assert all(processes._FIRST_PORT <= p < low for p in ports)


HOLDER = """
import random, sys
from leadpipe.devstack import processes
processes.random.randrange = lambda n: 0
print(processes.free_port(), flush=True)
sys.stdin.read()
"""


def test_a_port_another_process_holds_is_skipped_until_that_process_exits(monkeypatch: pytest.MonkeyPatch) -> None:
    if processes._ephemeral_low() is None:
        pytest.skip("no ip_local_port_range here")
    monkeypatch.setattr(processes.random, "randrange", lambda n: 0)  # the same first pick as the holder
    holder = subprocess.Popen([sys.executable, "-c", HOLDER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None
        held = int(holder.stdout.readline())
        monkeypatch.setattr(processes, "_handed_out", set())
        assert processes.port_is_free(held)  # nothing listens on it: only the other process's lock
        mine = free_port()
        assert mine != held
    finally:
        holder.communicate("", timeout=10)
    assert processes._lock_port(held)  # the lock went with the process
