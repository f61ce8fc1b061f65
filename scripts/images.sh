#!/usr/bin/env bash
# Builds leadpipe's images locally, each only when the hash of its inputs changed (the hash is the
# image's leadpipe.inputs label), so a second run takes seconds. No registry is needed:
#   leadpipe-debian:bookworm   debootstrap of Debian bookworm (minbase), imported
#   leadpipe-python:3.11       + Debian's python3 (3.11): the leadpipe image's base here, plus
#                              the host's extra CA certificates (LEADPIPE_EXTRA_CA_DIR, default
#                              /usr/local/share/ca-certificates; empty for none) for PyPI
#   leadpipe-kafka:<version>   + openjdk-17-jre-headless + the Maven jars of the devstack pom
#   leadpipe-redis:7           + Debian's redis-server
#   leadpipe-prometheus:2      + Debian's prometheus (and promtool)
#   leadpipe:in-<inputs hash>  the Dockerfile, BASE=leadpipe-python:3.11 unless
#                              LEADPIPE_BASE_IMAGE is set (e.g. python:3.11-slim with a registry);
#                              also tagged leadpipe:latest; the tag is written to
#                              .leadpipe/leadpipe-image (what the container tests run)
# usage: scripts/images.sh [leadpipe|stack|infra|all|<one name above without tag>]...
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/engine.sh
source scripts/engine.sh
engine_pick || { echo "images: no usable container engine: $ENGINE_PROBLEM" >&2; exit 1; }

MIRROR="${LEADPIPE_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
KAFKA_VERSION="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' leadpipe/devstack/kafka/pom.xml)"
KAFKA_IMAGE="leadpipe-kafka:$KAFKA_VERSION"
# podman's default OCI image format drops HEALTHCHECK; the docker format keeps it.
BUILD=(build_quietly "$ENGINE" build -q)
[[ "$ENGINE" == podman ]] && BUILD+=(--format docker)

build_quietly() {  # the build's output only when it fails
    local log
    log=$(mktemp /var/tmp/leadpipe-build.XXXXXX.log)
    if ! "$@" >"$log" 2>&1; then
        tail -40 "$log" >&2
        rm -f "$log"
        echo "images: failed: $*" >&2
        exit 1
    fi
    rm -f "$log"
}

TEMPS=()
trap 'rm -rf "${TEMPS[@]}"' EXIT
tempdir() {  # name -> TMPD: a fresh directory under /var/tmp, removed when the script exits
    TMPD=$(mktemp -d "/var/tmp/leadpipe-$1.XXXXXX")
    TEMPS+=("$TMPD" "$TMPD.log")
}

hash_of() {  # files or directories (and literal strings after --) -> 16 hex chars; a directory's
    # files count by their path inside it, so a temporary build context hashes the same each run
    local strings=()
    local paths=()
    local seen_dashes=0
    for a in "$@"; do
        if [[ "$a" == -- ]]; then seen_dashes=1; elif ((seen_dashes)); then strings+=("$a"); else paths+=("$a"); fi
    done
    {
        for p in "${paths[@]}"; do
            if [[ -d "$p" ]]; then
                echo "dir $(basename "$p")"
                (cd "$p" && find . -type f ! -name '*.pyc' ! -path '*/__pycache__/*' -print0 | sort -z | xargs -0 sha256sum)
            else
                echo "file $(basename "$p") $(sha256sum <"$p" | cut -c1-64)"
            fi
        done
        printf '%s\n' "${strings[@]}"
    } | sha256sum | cut -c1-16
}

label_of() {
    $ENGINE image inspect --format '{{ index .Config.Labels "leadpipe.inputs" }}' "$1" 2>/dev/null || true
}

OLD_IDS=()
fresh() {  # image hash -> 0 when the image exists with that hash (else remember its id)
    if [[ "$(label_of "$1")" == "$2" ]]; then
        echo "images: $1 is up to date (inputs $2)"
        return 0
    fi
    OLD_IDS+=("$($ENGINE image inspect --format '{{.Id}}' "$1" 2>/dev/null)")
    return 1
}

drop_replaced() {  # the images a rebuild replaced, unless something still uses them
    local id
    for id in "${OLD_IDS[@]}"; do
        [[ -n "$id" ]] && $ENGINE rmi "$id" >/dev/null 2>&1 || true
    done
}

build_base() {
    local h
    # The recipe below, by name: bump base-1 when it changes (editing this script must not
    # re-run debootstrap).
    h=$(hash_of -- "$MIRROR" bookworm minbase ca-certificates base-1)
    fresh leadpipe-debian:bookworm "$h" && return 0
    command -v debootstrap >/dev/null || { echo "images: debootstrap missing (apt-get install debootstrap)" >&2; exit 1; }
    local root
    tempdir rootfs
    root=$TMPD
    echo "images: debootstrap bookworm into $root (a few minutes, once) ..."
    debootstrap --variant=minbase --include=ca-certificates bookworm "$root" "$MIRROR" >"$root.log" 2>&1 \
        || { tail -20 "$root.log" >&2; exit 1; }
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
    printf 'deb %s bookworm main\ndeb %s bookworm-updates main\n' "$MIRROR" "$MIRROR" >"$root/etc/apt/sources.list"
    tar -C "$root" -c . | $ENGINE import --change "LABEL leadpipe.inputs=$h" --change 'CMD ["/bin/bash"]' \
        - leadpipe-debian:bookworm >/dev/null
}

build_dir() {  # name dir [extra hash inputs...]: a Containerfile on the Debian base
    local name=$1 dir=$2
    shift 2
    local h
    h=$(hash_of "$dir" "$@" -- "$(label_of leadpipe-debian:bookworm)")
    fresh "$name" "$h" && return 0
    echo "images: building $name ..."
    "${BUILD[@]}" --build-arg BASE=leadpipe-debian:bookworm --label "leadpipe.inputs=$h" \
        -f "$dir/Containerfile" -t "$name" "$dir"
}

build_python() {
    local ctx
    tempdir python-ctx
    ctx=$TMPD
    cp -a deploy/images/python/. "$ctx/"
    mkdir -p "$ctx/ca"
    local extra="${LEADPIPE_EXTRA_CA_DIR-/usr/local/share/ca-certificates}"
    if [[ -n "$extra" && -d "$extra" ]]; then
        find "$extra" -maxdepth 1 -name '*.crt' -exec cp {} "$ctx/ca/" \;
    fi
    local h
    h=$(hash_of "$ctx/Containerfile" "$ctx/ca" -- "$(label_of leadpipe-debian:bookworm)")
    fresh leadpipe-python:3.11 "$h" && return 0
    echo "images: building leadpipe-python:3.11 ..."
    "${BUILD[@]}" --build-arg BASE=leadpipe-debian:bookworm --label "leadpipe.inputs=$h" \
        -t leadpipe-python:3.11 "$ctx"
}

build_kafka() {
    local libs
    libs=$(.venv/bin/python -c 'from leadpipe.devstack.kafka import ensure_jars; print(ensure_jars(quiet=True))')
    local ctx
    tempdir kafka-ctx
    ctx=$TMPD
    cp -a deploy/images/kafka/. "$ctx/"
    cp -a "$libs" "$ctx/libs"
    cp leadpipe/devstack/kafka/log4j2.properties "$ctx/"
    local h
    h=$(hash_of deploy/images/kafka leadpipe/devstack/kafka -- "$(label_of leadpipe-debian:bookworm)")
    fresh "$KAFKA_IMAGE" "$h" && return 0
    echo "images: building $KAFKA_IMAGE ..."
    "${BUILD[@]}" --build-arg BASE=leadpipe-debian:bookworm --label "leadpipe.inputs=$h" \
        -t "$KAFKA_IMAGE" "$ctx"
}

LEADPIPE_KEEP=${LEADPIPE_KEEP_IMAGES:-6}
build_leadpipe() {
    # Tagged leadpipe:in-<hash of its inputs> as well as leadpipe:latest: clones and branches on
    # one machine share podman's image store, so each finds its own build there instead of
    # rebuilding after another clone's build moved `latest`. The newest $LEADPIPE_KEEP stay.
    local base="${LEADPIPE_BASE_IMAGE:-leadpipe-python:3.11}"
    if [[ -z "${LEADPIPE_BASE_IMAGE:-}" ]]; then
        build_base
        build_python
    fi
    local h
    h=$(hash_of Dockerfile .dockerignore pyproject.toml uv.lock README.md schemas services leadpipe \
        -- "$base" "$(label_of "$base")" "${BUILD[*]:1}")
    local tag="leadpipe:in-$h"
    if $ENGINE image inspect "$tag" >/dev/null 2>&1; then
        echo "images: $tag is up to date"
    else
        echo "images: building $tag on $base ..."
        local t0=$SECONDS
        "${BUILD[@]}" --build-arg "BASE=$base" --label "leadpipe.inputs=$h" -t "$tag" .
        echo "images: $tag built in $((SECONDS - t0))s"
    fi
    $ENGINE tag "$tag" leadpipe:latest
    mkdir -p .leadpipe
    echo "$tag" >.leadpipe/leadpipe-image
    local size
    size=$($ENGINE image inspect --format '{{.Size}}' "$tag")
    echo "images: $tag (leadpipe:latest) is $((size / 1000000)) MB ($size bytes) on $base"
    local old
    old=$($ENGINE images --format '{{.CreatedAt}}\t{{.Repository}}:{{.Tag}}' \
        | grep -E $'\t(localhost/)?leadpipe:in-' | sort -r | tail -n +$((LEADPIPE_KEEP + 1)) | cut -f2 || true)
    for t in $old; do
        [[ "$t" == *"$tag" ]] || $ENGINE rmi "$t" >/dev/null 2>&1 || true
    done
}

[[ $# -gt 0 ]] || set -- leadpipe
for what in "$@"; do
    case "$what" in
        base) build_base ;;
        python) build_base && build_python ;;
        kafka) build_base && build_kafka ;;
        redis) build_base && build_dir leadpipe-redis:7 deploy/images/redis ;;
        prometheus) build_base && build_dir leadpipe-prometheus:2 deploy/images/prometheus ;;
        leadpipe) build_leadpipe ;;
        infra) build_base && build_kafka && build_dir leadpipe-redis:7 deploy/images/redis ;;
        stack | all)
            build_leadpipe
            build_kafka
            build_dir leadpipe-redis:7 deploy/images/redis
            build_dir leadpipe-prometheus:2 deploy/images/prometheus
            ;;
        *) echo "images: unknown image '$what'" >&2; exit 2 ;;
    esac
done
drop_replaced
