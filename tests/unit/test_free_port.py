"""``free_port`` never hands out a port twice in one process, even when the kernel offers it again
(two stack parts given one port: the second fails to start)."""

from __future__ import annotations

import socket
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
    monkeypatch.setattr(processes, "_handed_out", set())
    monkeypatch.setattr(socket, "socket", Offers([41001, 41001, 41001, 41002]))
    assert [free_port(), free_port()] == [41001, 41002]


def test_it_gives_up_with_a_clear_error_when_the_kernel_offers_nothing_new(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(processes, "_handed_out", {41001})
    monkeypatch.setattr(socket, "socket", Offers([41001] * 1000))
    with pytest.raises(RuntimeError, match="offered no port"):
        free_port()


def test_real_ports_are_distinct_and_free() -> None:
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == 50
    assert all(processes.port_is_free(p) for p in ports)
