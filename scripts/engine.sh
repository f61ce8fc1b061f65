# Sourced by the container scripts: picks the engine (podman, else docker) into $ENGINE, or says
# why none is usable. Podman gets deploy/podman/containers.conf (runc, cgroupfs, no default
# rlimits), which is what works on root hosts without systemd and with hybrid cgroups.
# LEADPIPE_CONTAINER_ENGINE=docker|podman forces one.
_leadpipe_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

engine_pick() {
    local want="${LEADPIPE_CONTAINER_ENGINE:-}"
    ENGINE=""
    ENGINE_PROBLEM=""
    if [[ -z "$want" || "$want" == podman ]] && command -v podman >/dev/null; then
        export CONTAINERS_CONF="${CONTAINERS_CONF:-$_leadpipe_root/deploy/podman/containers.conf}"
        local out rc
        out=$(podman image exists leadpipe-debian:bookworm 2>&1)
        rc=$?
        if ((rc == 1)); then
            # No base image to run yet (scripts/images.sh base makes it): podman must answer.
            if out=$(timeout 60 podman info 2>&1 >/dev/null); then
                ENGINE=podman
                return 0
            fi
            ENGINE_PROBLEM="podman info fails: ${out//$'\n'/ }"
            return 1
        fi
        if ((rc != 0)); then
            ENGINE_PROBLEM="podman image exists fails (exit $rc): ${out//$'\n'/ }"
            return 1
        fi
        if out=$(timeout 60 podman run --rm --network none leadpipe-debian:bookworm true 2>&1); then
            ENGINE=podman
            return 0
        fi
        ENGINE_PROBLEM="podman run fails: ${out//$'\n'/ }"
        return 1
    fi
    if [[ -z "$want" || "$want" == docker ]] && command -v docker >/dev/null; then
        local out
        if out=$(timeout 20 docker info 2>&1 >/dev/null); then
            ENGINE=docker
            return 0
        fi
        ENGINE_PROBLEM="docker: ${out//$'\n'/ }"
        return 1
    fi
    case "$want" in
        podman) ENGINE_PROBLEM="podman is not installed (apt-get install podman runc)" ;;
        docker) ENGINE_PROBLEM="docker is not installed" ;;
        *) ENGINE_PROBLEM="neither podman nor docker is installed" ;;
    esac
    return 1
}
