#!/usr/bin/env bash
# `make test-containers`: builds the images (skipped when their inputs' hash is unchanged), then
# runs tests/containers on one compose stack in podman: a demo form -> rep alert, the chaos load
# with no fault (the control), then faults
# under the chaos load, each audited by the chaos audit: a scoring container killed with SIGKILL
# and restarted by its restart policy, a notifier cut off from Redis, a broker cut off from the
# network (tests/containers/conftest.py orders them).
#   --if-usable   what `make test` calls: when podman cannot run containers here, say why and
#                 exit 0 instead of failing (an image that fails to build still fails).
#   --ci          only the tests `make test` runs (CI_TESTS below); `make test-containers` runs all.
# Runs of different clones on this machine take turns (flock on $LEADPIPE_CONTAINERS_LOCK): the
# stacks would share host ports 29091-29093 and 9090 and the project name.
set -uo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/engine.sh
source scripts/engine.sh
optional=0
ci=0
for arg in "$@"; do
    case "$arg" in
        --if-usable) optional=1 ;;
        --ci) ci=1 ;;
        *) echo "test-containers: unknown option $arg" >&2; exit 2 ;;
    esac
done
CI_TESTS=(
    tests/containers/test_compose_stack.py
    tests/containers/test_replicas_under_load.py
    tests/containers/test_restart_policy.py
    tests/containers/test_redis_partition.py
    tests/containers/test_broker_partition.py
)

unusable() {
    if ((optional)); then
        echo "containers: podman not usable here: $1; the container tests did NOT run"
        exit 0
    fi
    echo "containers: podman not usable here: $1" >&2
    exit 1
}

LEADPIPE_CONTAINER_ENGINE=podman engine_pick || unusable "$ENGINE_PROBLEM"
lock="${LEADPIPE_CONTAINERS_LOCK:-/var/tmp/leadpipe-containers.lock}"
exec 9>>"$lock"
if ! flock -n 9; then
    echo "containers: another clone's container tests hold $lock; waiting for them"
    flock 9
fi
t0=$SECONDS
# The base image is imported, not built (no container runs); with it, engine_pick really starts
# a container, so a podman that cannot run containers is told apart from an image that fails.
./scripts/images.sh base || unusable "the Debian base image could not be made (see above)"
LEADPIPE_CONTAINER_ENGINE=podman engine_pick || unusable "$ENGINE_PROBLEM"
# Podman works but an image does not build: that is a failure to fix, not a reason to skip.
if ! ./scripts/images.sh stack; then
    echo "containers: building the images failed (see above)" >&2
    exit 1
fi
LEADPIPE_IMAGE="$(cat .leadpipe/leadpipe-image)"
export LEADPIPE_IMAGE
echo "containers: images ready in $((SECONDS - t0))s; the stack runs $LEADPIPE_IMAGE"
tests=(tests/containers)
((ci)) && tests=("${CI_TESTS[@]}")
LEADPIPE_TEST_CONTAINERS=1 timeout 1500 .venv/bin/python -m pytest "${tests[@]}" -m containers \
    -p no:cacheprovider -s
rc=$?
echo "containers: images and tests took $((SECONDS - t0))s (rc $rc)"
exit $rc
