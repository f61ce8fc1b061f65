"""``leadpipe scoring rescore``: bad input and unreachable services end with a clear error."""

from __future__ import annotations

import socket
import threading

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


# redis-py speaks RESP3: HELLO gets a map, PING a status, anything else (GET) a null.
_HELLO = {b"server": b"$5\r\nredis", b"version": b"$5\r\n7.2.0", b"proto": b":3", b"mode": b"$10\r\nstandalone"}
_REPLIES = {
    b"HELLO": b"%4\r\n" + b"".join(b"$%d\r\n%s\r\n%s\r\n" % (len(k), k, v) for k, v in _HELLO.items()),
    b"PING": b"+PONG\r\n",
    b"CLIENT": b"+OK\r\n",
}


class _RedisThatGoesAway:
    """A TCP peer speaking just enough RESP: answers PING and GET, then drops every connection
    at the first SCAN, as a Redis that dies while the rescore walks the keys."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._session, args=(conn,), daemon=True).start()

    @staticmethod
    def _session(conn: socket.socket) -> None:
        buf = b""
        with conn:
            while data := conn.recv(65536):
                buf += data
                while (parsed := _command(buf)) is not None:
                    name, buf = parsed
                    if name == b"SCAN":
                        return
                    conn.sendall(_REPLIES.get(name, b"_\r\n"))


def _command(buf: bytes) -> tuple[bytes, bytes] | None:
    """The first RESP command's name and the rest of the buffer (None until it is complete)."""
    if not buf.startswith(b"*") or b"\r\n" not in buf:
        return None
    head, rest = buf.split(b"\r\n", 1)
    parts = []
    for _ in range(int(head[1:])):
        if b"\r\n" not in rest:
            return None
        size, rest = rest.split(b"\r\n", 1)
        n = int(size[1:])
        if len(rest) < n + 2:
            return None
        parts.append(rest[:n])
        rest = rest[n + 2 :]
    return parts[0].upper(), rest


def test_losing_redis_mid_run_is_an_error_that_says_how_to_resume(capsys: pytest.CaptureFixture[str]):
    peer = _RedisThatGoesAway()
    try:
        code = main(["scoring", "rescore", "--model", "fit-2026.2", "--dry-run", "--no-progress", "--run-id", "r-7",
                     "--redis-url", f"redis://127.0.0.1:{peer.port}/0"])  # fmt: skip
    finally:
        peer.sock.close()
    assert code == 3
    err = capsys.readouterr().err
    assert "lost Redis or Kafka after 0 lead(s)" in err and "run again with --run-id r-7" in err


def test_a_split_with_redis_unreachable_is_an_error_naming_it(capsys: pytest.CaptureFixture[str]):
    url = f"redis://{nowhere()}/0"
    code = main(["scoring", "split", "--lead-id", "ld_1", "--capture-id", "c-1", "--redis-url", url,
                 "--bootstrap", nowhere()])  # fmt: skip
    assert code == 3
    assert f"Redis at {url} unreachable" in capsys.readouterr().err


def test_a_split_with_the_broker_unreachable_is_an_error_naming_it(capsys: pytest.CaptureFixture[str]):
    peer, broker = _RedisThatGoesAway(), nowhere()
    try:
        code = main(["scoring", "split", "--lead-id", "ld_1", "--capture-id", "c-1",
                     "--redis-url", f"redis://127.0.0.1:{peer.port}/0", "--bootstrap", broker])  # fmt: skip
    finally:
        peer.sock.close()
    assert code == 3
    assert f"Kafka at {broker} unreachable" in capsys.readouterr().err
