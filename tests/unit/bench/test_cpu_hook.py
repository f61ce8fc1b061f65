"""bench/cpu_hook: the measuring hook profiles a process's main thread by its CPU clock between
two signals, and the report sums the profile by layer (a built-in's time going to its callers)."""

from __future__ import annotations

import cProfile
import json
import os
import pstats
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import orjson
import pytest

from bench.cpu_hook import run as run_module
from bench.cpu_hook.report import OTHER, by_layer, layer_of, name_of, report, table, with_ms
from bench.cpu_hook.run import profiled_pids

HOOK = Path(__file__).resolve().parents[3] / "bench" / "cpu_hook"

WORKER = textwrap.dedent(
    """
    import os, signal, time
    os.kill(os.getpid(), signal.SIGRTMIN + 3)
    start = time.thread_time()
    while time.thread_time() - start < 0.2:
        sum(i * i for i in range(1000))
    time.sleep(0.3)  # asleep: the main thread's CPU clock stands still
    os.kill(os.getpid(), signal.SIGRTMIN + 4)
    """
)


def run_hooked(tmp_path: Path, *, match: str, code: str = WORKER) -> None:
    env = os.environ | {"CPUPROF_DIR": str(tmp_path), "CPUPROF_MATCH": match, "PYTHONPATH": str(HOOK)}
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=60)


def test_a_matching_process_is_profiled_by_its_cpu_clock_between_the_two_signals(tmp_path: Path) -> None:
    run_hooked(tmp_path, match="-c")
    (meta,) = tmp_path.glob("*.json")
    doc = json.loads(meta.read_text())
    assert doc["argv"][0] == "-c"
    assert doc["wall_s"] >= 0.45  # the busy 0.2 s and the sleep
    assert 0.15 <= doc["main_thread_cpu_s"] < 0.4  # the sleep is not CPU
    profiled = sum(row[2] for row in pstats.Stats(str(meta.with_suffix(".prof"))).stats.values())  # type: ignore[attr-defined]
    assert 0.1 <= profiled <= doc["main_thread_cpu_s"] + 0.05
    # the profiler's cost per call, calibrated in the process: a clock read or two (a system call)
    assert 0 < doc["callee_bias_s"] < 20e-6 and 0 <= doc["caller_bias_s"] < 20e-6


def test_a_process_not_matching_or_without_the_directory_is_left_alone(tmp_path: Path) -> None:
    # the signal would kill an unhooked process: it must not be sent one, and a hooked
    # non-matching process has no handler either
    code = "import signal; print(signal.getsignal(signal.SIGRTMIN + 3) == signal.SIG_DFL)"
    env = os.environ | {"CPUPROF_DIR": str(tmp_path), "PYTHONPATH": str(HOOK)}  # default match: services.
    out = subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=60, capture_output=True, text=True)
    assert out.stdout.strip() == "True"
    env = {k: v for k, v in env.items() if k != "CPUPROF_DIR"} | {"CPUPROF_MATCH": "-c"}
    out = subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=60, capture_output=True, text=True)
    assert out.stdout.strip() == "True"
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("filename", "layer"),
    [
        ("/x/site-packages/aiokafka/protocol/types.py", "kafka client"),
        ("/x/site-packages/kafka/conn.py", "kafka client"),
        ("/x/site-packages/faust/transport/consumer.py", "faust"),
        ("/x/site-packages/mode/services.py", "faust"),
        ("/x/site-packages/redis/asyncio/connection.py", "redis client"),
        ("/x/site-packages/fastapi/routing.py", "http server"),
        ("/x/site-packages/uvicorn/protocols/http/httptools_impl.py", "http server"),
        ("/x/site-packages/pydantic/main.py", "pydantic"),
        ("/x/site-packages/jinja2/runtime.py", "templates"),
        ("/work/main/schemas/pii.py", "sealing"),
        ("/work/main/leadpipe/runtime/keystore.py", "sealing"),
        ("/work/main/schemas/codec.py", "codec"),
        ("/work/main/leadpipe/runtime/stream.py", "runtime"),
        ("/work/main/leadpipe/runtime/kafka.py", "runtime"),
        ("/work/main/services/nurture/handlers.py", "service"),
        ("/work/main/services/notifier/templates/en/rep_alert.html.j2", "service"),
        ("/usr/lib/python3.11/asyncio/tasks.py", "event loop"),
        ("/usr/lib/python3.11/logging/__init__.py", "logging"),
        ("/usr/lib/python3.11/base64.py", OTHER),
        ("<frozen abc>", OTHER),
    ],
)
def test_each_file_belongs_to_its_layer(filename: str, layer: str) -> None:
    assert layer_of(filename) == layer


def test_a_builtins_time_goes_to_its_callers_layers_in_proportion() -> None:
    # orjson is a C extension: its functions are built-ins, called here from ``work`` (entered
    # while profiling, so the profile records it as their caller)
    profile = cProfile.Profile(time.thread_time)
    payload = {"k": list(range(2000)), "s": "x" * 1000}

    def work() -> None:
        for _ in range(300):
            orjson.dumps(payload)

    profile.enable()
    work()
    profile.disable()
    stats = pstats.Stats(profile)
    table_: dict[
        tuple[str, int, str], tuple[int, int, float, float, dict[tuple[str, int, str], tuple[int, int, float, float]]]
    ] = stats.stats  # type: ignore[attr-defined]
    (key,) = [k for k in table_ if k[0] == "~" and "orjson.dumps" in k[2]]
    cc, nc, own, cum, callers = table_[key]
    (caller,) = callers
    # re-home the only caller under a service's path, and add a second, runtime caller with a
    # third of the calls' time: the built-in's time splits 2:1 between them
    service = ("/work/main/services/scoring/handlers.py", 1, "handle")
    runtime = ("/work/main/leadpipe/runtime/stream.py", 1, "process")
    c_nc, c_cc, c_tt, c_ct = callers[caller]
    table_[key] = (cc, nc, own, cum, {service: (c_nc, c_cc, 2 * c_tt, c_ct), runtime: (c_nc, c_cc, c_tt, c_ct)})
    layers = by_layer(stats)
    assert layers["service"] == pytest.approx(own * 2 / 3)
    assert layers["runtime"] == pytest.approx(own / 3)


def test_the_profilers_cost_per_call_is_taken_off_callee_and_caller_never_below_zero() -> None:
    profile = cProfile.Profile()
    profile.enable()
    profile.disable()
    stats = pstats.Stats(profile)
    caller = ("/x/services/a.py", 1, "handle")
    callee = ("/x/site-packages/aiokafka/b.py", 1, "decode")
    tiny = ("/x/site-packages/redis/c.py", 1, "pack")
    stats.stats = {  # type: ignore[attr-defined]
        caller: (10, 10, 0.010, 0.020, {}),
        callee: (100, 100, 0.005, 0.005, {caller: (100, 100, 0.005, 0.005)}),
        tiny: (50, 50, 0.0001, 0.0001, {caller: (50, 50, 0.0001, 0.0001)}),
    }
    layers = by_layer(stats, callee_bias_s=10e-6, caller_bias_s=20e-6)
    assert layers["service"] == pytest.approx(0.010 - 10 * 10e-6 - 150 * 20e-6)  # 150 calls made
    assert layers["kafka client"] == pytest.approx(0.005 - 100 * 10e-6)
    assert layers["redis client"] == 0.0  # 0.1 ms less 0.5 ms of calls: nothing, not negative
    assert by_layer(stats)["service"] == pytest.approx(0.010)  # no bias given: as profiled


def test_the_report_names_each_process_and_gives_shares_and_ms_per_lead(tmp_path: Path) -> None:
    run_hooked(tmp_path, match="-c")
    (meta,) = tmp_path.glob("*.json")
    doc = json.loads(meta.read_text())
    doc["argv"] = ["/repo/services/scoring/__main__.py"]  # a service's sys.argv (python -m services.scoring)
    meta.write_text(json.dumps(doc))
    rows = report(tmp_path)
    assert list(rows) == ["scoring"]
    shares = rows["scoring"]["share_pct"]
    assert sum(shares.values()) == pytest.approx(100, abs=0.5)
    assert shares[OTHER] > 50  # the busy loop is the -c script itself: not a layer of the stack
    bench = tmp_path / "bench.result"
    bench.write_text(json.dumps({"phases": {"e_sweep": {"20": {"cpu": {"cpu_ms_per_lead": {"scoring": 5.0}}}}}}))
    rows = with_ms(rows, bench, "20")
    assert sum(rows["scoring"]["ms_per_lead"].values()) == pytest.approx(5.0, abs=0.05)
    text = table(rows)
    assert "CPU ms per lead" in text and "scoring" in text.splitlines()[0]
    assert text.splitlines()[-1].split() == ["total", "5.0"]


def test_names_of_command_lines() -> None:
    assert name_of(["/repo/services/nurture/__main__.py"]) == "nurture"
    assert name_of(["/repo/bench/idle_bench.py", "--threads"]) == "idle_bench"


def test_the_driver_finds_only_service_processes_started_with_the_hooks_directory(tmp_path: Path) -> None:
    sleeper = [sys.executable, "-c", "import time; time.sleep(30)"]
    marked = os.environ | {"CPUPROF_DIR": str(tmp_path)}
    procs = [
        subprocess.Popen([*sleeper, "services.scoring"], env=marked),  # a service, with the hook's directory
        subprocess.Popen([*sleeper, "services.nurture"], env=os.environ | {"CPUPROF_DIR": "/elsewhere"}),
        subprocess.Popen([*sleeper, "bench.other"], env=marked),  # not a service
    ]
    try:
        deadline = time.monotonic() + 10
        while (found := profiled_pids(tmp_path)) != [procs[0].pid] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert found == [procs[0].pid]
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
    assert profiled_pids(tmp_path) == []


def fake_bench(monkeypatch: pytest.MonkeyPatch, script: str) -> list[subprocess.Popen[str]]:
    started: list[subprocess.Popen[str]] = []
    real_popen = run_module.subprocess.Popen

    def popen(argv: list[str], **kwargs: object) -> subprocess.Popen[str]:
        proc = real_popen([sys.executable, "-c", script], **kwargs)  # type: ignore[call-overload]
        started.append(proc)
        return proc

    monkeypatch.setattr(run_module.subprocess, "Popen", popen)
    return started


def test_a_bench_that_ends_before_its_phase_is_an_exit_naming_its_status(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake_bench(monkeypatch, "print('raw chain ...', flush=True); raise SystemExit(2)")
    phase = run_module.sweep_phase(100, 10, tmp_path)
    with pytest.raises(SystemExit, match=r"the bench ended \(2\) before its 100 forms/s phase"), phase:
        pytest.fail("yielded without the phase")


def test_the_phase_is_yielded_once_it_begins_and_a_bench_still_running_is_stopped(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    started = fake_bench(monkeypatch, "import time; print('(e) 100 forms/s for 10 s ...', flush=True); time.sleep(60)")
    with run_module.sweep_phase(100, 10, tmp_path) as bench:
        assert bench.poll() is None  # the phase has begun and the bench runs
    (proc,) = started
    assert proc.poll() is not None  # stopped on the way out, not left running
