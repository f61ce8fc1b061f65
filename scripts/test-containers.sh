#!/usr/bin/env bash
# `make test-containers`: builds the images (skipped when their inputs' hash is unchanged), then
# runs tests/containers: the compose stack in podman (a demo form -> rep alert) and a broker
# partitioned under load, audited by the chaos audit.
#   --if-usable   what `make test` calls: when podman cannot run containers here, say why and
#                 exit 0 instead of failing; and run only the compose e2e test (about 1.5 to 2
#                 minutes warm): the broker-partition test takes 3 to 7 minutes, more than the
#                 CI budget of `make test`, so it runs in `make test-containers` only.
set -uo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/engine.sh
source scripts/engine.sh
optional=0
[[ "${1:-}" == --if-usable ]] && optional=1

unusable() {
    if ((optional)); then
        echo "containers: podman not usable here: $1; skipped"
        exit 0
    fi
    echo "containers: podman not usable here: $1" >&2
    exit 1
}

LEADPIPE_CONTAINER_ENGINE=podman engine_pick || unusable "$ENGINE_PROBLEM"
t0=$SECONDS
./scripts/images.sh stack || unusable "building the images failed (see above)"
# The images exist now, so this probe really starts a container.
LEADPIPE_CONTAINER_ENGINE=podman engine_pick || unusable "$ENGINE_PROBLEM"
echo "containers: images ready in $((SECONDS - t0))s"
tests=(tests/containers)
((optional)) && tests=(tests/containers/test_compose_stack.py) \
    && echo "containers: the broker-partition fault test runs in \`make test-containers\` only"
LEADPIPE_TEST_CONTAINERS=1 timeout 1200 .venv/bin/python -m pytest "${tests[@]}" -m containers \
    -p no:cacheprovider -s
rc=$?
echo "containers: suite took $((SECONDS - t0))s (rc $rc)"
exit $rc
