"""``python -m leadpipe.devstack.podman_stack up|down|ps``: deploy/compose.yml on plain podman.

Docker users run ``docker compose -f deploy/compose.yml up -d``. Here there is only podman, and
Debian bookworm's podman-compose (1.0.3) ignores ``depends_on`` conditions, while podman without
systemd runs no healthcheck timers, so nothing would ever become "healthy". This reads the same
compose file and starts each service with ``podman run`` on one user-defined network (each
replica its own address, the service name as DNS alias), in dependency order: a
``service_healthy`` dependency is awaited by running its healthcheck (``podman healthcheck
run``), ``service_completed_successfully`` with ``podman wait``. Supported compose keys: image,
command, environment (with ``${VAR}``, ``${VAR:-default}``, ``${VAR:?message}``), volumes (named
and relative binds), ports, restart, healthcheck, depends_on, deploy.replicas, profiles.

Exceptions: ``StackError`` (a container failed, or a dependency never became ready).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

COMPOSE = Path(__file__).resolve().parents[2] / "deploy" / "compose.yml"
#: runc, cgroupfs, no default rlimits: what podman needs on hosts like ours (see the file).
PODMAN_CONF = COMPOSE.parent / "podman" / "containers.conf"
LABEL = "leadpipe.stack"


class StackError(RuntimeError):
    """A container of the stack failed to start, or a dependency never became ready."""


@dataclass(frozen=True)
class Service:
    name: str
    spec: dict[str, Any]

    @property
    def replicas(self) -> int:
        return int(self.spec.get("deploy", {}).get("replicas", 1))

    def containers(self, project: str) -> list[str]:
        if self.replicas == 1:
            return [f"{project}-{self.name}"]
        return [f"{project}-{self.name}-{i}" for i in range(1, self.replicas + 1)]


def interpolate(text: str, env: Mapping[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3) or ""
        value = env.get(name, "")
        if op == ":-":
            return value or arg
        if op == ":?" and not value:
            raise StackError(f"{name}: {arg or 'must be set'}")
        return value

    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:-|:\?)([^}]*))?\}", one, text)


def interpolated(value: Any, env: Mapping[str, str]) -> Any:
    """``value`` with every string interpolated (after parsing, as compose does)."""
    if isinstance(value, str):
        return interpolate(value, env)
    if isinstance(value, list):
        return [interpolated(v, env) for v in value]
    if isinstance(value, dict):
        return {k: interpolated(v, env) for k, v in value.items()}
    return value


def podman(*args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ}
    env.setdefault("CONTAINERS_CONF", str(PODMAN_CONF))
    result = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout, check=False, env=env)
    if check and result.returncode != 0:
        raise StackError(f"podman {' '.join(args[:3])} ... failed: {result.stderr.strip()[-1500:]}")
    return result


def _duration(value: str | None) -> float | None:
    if not value:
        return None
    return sum(float(n) * {"s": 1, "m": 60, "h": 3600}[u] for n, u in re.findall(r"([\d.]+)([smh])", value))


def run_args(service: Service, container: str, project: str, base: Path) -> list[str]:
    spec = service.spec
    network = f"{project}-net"
    args = ["run", "-d", "--name", container, "--hostname", container.removeprefix(f"{project}-")]
    args += ["--label", f"{LABEL}={project}", "--label", f"{LABEL}.service={service.name}"]
    args += ["--network", network, "--network-alias", service.name]
    restart = spec.get("restart", "no")
    if restart != "no":
        args += ["--restart", str(restart)]
    for key, value in (spec.get("environment") or {}).items():
        args += ["-e", f"{key}={value}"]
    for volume in spec.get("volumes") or []:
        source, _, rest = str(volume).partition(":")
        if source.startswith("."):
            source = str((base / source).resolve())
        elif not source.startswith("/"):
            source = f"{project}_{source}"
        args += ["-v", f"{source}:{rest}"]
    for port in spec.get("ports") or []:
        args += ["-p", str(port)]
    health = spec.get("healthcheck")
    if health:
        test = health["test"]
        cmd = test[0] if test[0] == "CMD-SHELL" and len(test) == 2 else None
        args += ["--health-cmd", test[1] if cmd else json.dumps(test[1:])]
        # No systemd timer here: podman_stack runs the check itself while it waits.
        args += ["--health-interval", "disable"]
        if health.get("timeout"):
            args += ["--health-timeout", str(health["timeout"])]
    args.append(str(spec["image"]))
    command = spec.get("command")
    if command:
        args += [str(c) for c in command]
    return args


def _order(services: dict[str, Service]) -> list[Service]:
    done: list[str] = []

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in done:
            return
        if name in path:
            raise StackError(f"dependency cycle: {' -> '.join((*path, name))}")
        for dep in services[name].spec.get("depends_on") or {}:
            visit(dep, (*path, name))
        done.append(name)

    for name in services:
        visit(name, ())
    return [services[n] for n in done]


def _wait_healthy(service: Service, project: str, deadline: float) -> None:
    for container in service.containers(project):
        while True:
            if podman("healthcheck", "run", container, check=False, timeout=60).returncode == 0:
                break
            state = podman("inspect", "--format", "{{.State.Status}}", container, check=False).stdout.strip()
            if time.monotonic() > deadline:
                raise StackError(f"{container} not healthy in time (state {state})")
            time.sleep(2)


def _wait_completed(service: Service, project: str, deadline: float) -> None:
    for container in service.containers(project):
        left = max(1.0, deadline - time.monotonic())
        code = podman("wait", container, timeout=left).stdout.strip()
        if code != "0":
            logs = podman("logs", "--tail", "20", container, check=False)
            raise StackError(f"{container} exited {code}:\n{logs.stdout}{logs.stderr}")


def up(
    path: Path = COMPOSE,
    project: str = "leadpipe",
    profiles: Sequence[str] = (),
    *,
    env: Mapping[str, str] | None = None,
    extra: Mapping[str, Mapping[str, Any]] | None = None,
    timeout_s: float = 600,
) -> dict[str, float]:
    """Start every service (not in an unselected profile); returns seconds to each service's start.

    ``extra`` adds ``environment`` entries and ``volumes`` to named services (what a second
    compose file would override; the container tests use it for their outbox and forms)."""
    doc: dict[str, Any] = yaml.safe_load(path.read_text())
    services: dict[str, Service] = {}
    for name, raw in doc["services"].items():
        if raw.get("profiles") and not set(raw["profiles"]) & set(profiles):
            continue
        # Only selected services: an unselected one's required variables need not be set.
        spec = interpolated(raw, os.environ if env is None else env)
        more = (extra or {}).get(name, {})
        spec["environment"] = {**(spec.get("environment") or {}), **more.get("environment", {})}
        spec["volumes"] = [*(spec.get("volumes") or []), *more.get("volumes", [])]
        services[name] = Service(name, spec)
    t0 = time.monotonic()
    deadline = t0 + timeout_s
    if podman("network", "exists", f"{project}-net", check=False).returncode != 0:
        podman("network", "create", "--label", f"{LABEL}={project}", f"{project}-net")
    for volume in doc.get("volumes") or {}:
        if podman("volume", "exists", f"{project}_{volume}", check=False).returncode != 0:
            podman("volume", "create", "--label", f"{LABEL}={project}", f"{project}_{volume}")
    started: dict[str, float] = {}
    for service in _order(services):
        for dep, cond in (service.spec.get("depends_on") or {}).items():
            condition = cond.get("condition") if isinstance(cond, dict) else None
            if condition == "service_healthy":
                _wait_healthy(services[dep], project, deadline)
            elif condition == "service_completed_successfully":
                _wait_completed(services[dep], project, deadline)
        for container in service.containers(project):
            podman("rm", "-f", "-v", container, check=False)
            podman(*run_args(service, container, project, path.parent))
        started[service.name] = round(time.monotonic() - t0, 1)
        print(f"podman_stack: {service.name} started at +{started[service.name]}s", flush=True)
    return started


def down(project: str = "leadpipe", volumes: bool = True) -> None:
    """Remove the stack's containers, network and (by default) volumes."""
    # A container its restart policy is just restarting can refuse removal ("could not be
    # stopped: container state improper"): try again on what is left, then give up loudly.
    for attempt in range(3):
        ids = podman("ps", "-aq", "--filter", f"label={LABEL}={project}").stdout.split()
        if not ids:
            break
        result = podman("rm", "-f", "-v", "-t", "5", *ids, check=False)  # -v: anonymous VOLUMEs too
        if result.returncode == 0:
            break
        if attempt == 2:
            raise StackError(f"podman rm -f ... failed: {result.stderr.strip()[-1500:]}")
        time.sleep(2)
    podman("network", "rm", "-f", f"{project}-net", check=False)
    if volumes:
        names = podman("volume", "ls", "-q", "--filter", f"label={LABEL}={project}").stdout.split()
        if names:
            podman("volume", "rm", "-f", *names)


def container_ip(container: str, project: str = "leadpipe") -> str:
    fmt = f'{{{{(index .NetworkSettings.Networks "{project}-net").IPAddress}}}}'
    return podman("inspect", "--format", fmt, container).stdout.strip()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="podman_stack", description=__doc__.split("\n")[0])
    parser.add_argument("action", choices=["up", "down", "ps"])
    parser.add_argument("-f", "--file", type=Path, default=COMPOSE)
    parser.add_argument("-p", "--project", default="leadpipe")
    parser.add_argument("--profile", action="append", default=[])
    parser.add_argument("--keep-volumes", action="store_true")
    args = parser.parse_args(argv)
    try:
        if args.action == "up":
            t0 = time.monotonic()
            up(args.file, args.project, args.profile)
            print(f"podman_stack: stack up in {time.monotonic() - t0:.1f}s", flush=True)
        elif args.action == "down":
            down(args.project, volumes=not args.keep_volumes)
        else:
            fmt = "{{.Names}}\t{{.Status}}\t{{.Networks}}"
            print(podman("ps", "-a", "--filter", f"label={LABEL}={args.project}", "--format", fmt).stdout)
    except StackError as exc:
        print(f"podman_stack: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
