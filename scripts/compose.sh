#!/usr/bin/env bash
# `make compose-up` / `make compose-down`: the whole stack of deploy/compose.yml in containers.
# podman: builds every image locally (scripts/images.sh, cached) and runs the compose file with
# leadpipe/devstack/podman_stack.py (Debian's podman-compose 1.0.3 ignores depends_on conditions).
# docker: builds the leadpipe image and runs `docker compose` (the other images are pulled).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/engine.sh
source scripts/engine.sh
engine_pick || { echo "compose: no usable container engine: $ENGINE_PROBLEM" >&2; exit 1; }
export LEADPIPE_LINK_SECRET="${LEADPIPE_LINK_SECRET:-local-compose-only-secret}"
action="${1:-up}"
if [[ "$ENGINE" == podman ]]; then
    kafka="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' leadpipe/devstack/kafka/pom.xml)"
    export LEADPIPE_KAFKA_IMAGE="${LEADPIPE_KAFKA_IMAGE:-leadpipe-kafka:$kafka}"
    export LEADPIPE_REDIS_IMAGE="${LEADPIPE_REDIS_IMAGE:-leadpipe-redis:7}"
    export LEADPIPE_PROMETHEUS_IMAGE="${LEADPIPE_PROMETHEUS_IMAGE:-leadpipe-prometheus:2}"
    case "$action" in
        up)
            ./scripts/images.sh stack
            exec .venv/bin/python -m leadpipe.devstack.podman_stack up
            ;;
        down) exec .venv/bin/python -m leadpipe.devstack.podman_stack down ;;
        ps) exec .venv/bin/python -m leadpipe.devstack.podman_stack ps ;;
    esac
else
    case "$action" in
        up)
            ./scripts/images.sh leadpipe
            exec docker compose -f deploy/compose.yml up -d --wait
            ;;
        down) exec docker compose -f deploy/compose.yml down -v ;;
        ps) exec docker compose -f deploy/compose.yml ps ;;
    esac
fi
echo "compose: unknown action '$action' (up, down, ps)" >&2
exit 2
