#!/usr/bin/env bash
# Installs the Debian packages the stack and the tests use, when missing.
#   java + mvn:   the embedded Apache Kafka (fetched with Maven, run on Java 17+)
#   redis-server: the embedded Redis
#   postgresql:   the sales console's read model (a private server, like Redis)
#   kcat, prometheus (promtool), chromium: tools the tests drive
#   podman, runc, the CNI dnsname plugin, debootstrap, nftables: the container tests
#                 (tests/containers: the compose stack, kill -9, network partitions): the engine,
#                 container names resolving on the compose network (podman picks CNI when
#                 installed without recommends, and CNI resolves names only with dnsname), the
#                 Debian base image the images start from, and the faults' packet filter;
#                 without podman `make test` skips that lane and says so
# --run-only: just what `make run` needs. Under CI=true a package that cannot be installed is an
# error (CI must not go green by skipping the tests that need it); elsewhere a warning.
set -euo pipefail
want=()
need() { command -v "$1" >/dev/null || want+=("$2"); }
need java openjdk-17-jre-headless
need mvn maven
need redis-server redis-server
[ -n "$(ls /usr/lib/postgresql/*/bin/postgres 2>/dev/null)" ] || command -v postgres >/dev/null || want+=(postgresql)
if [ "${1:-}" != "--run-only" ]; then
  need kcat kcat
  need promtool prometheus
  need chromium chromium
  need podman podman
  need runc runc
  need debootstrap debootstrap
  need nft nftables
  [ -e /usr/lib/cni/dnsname ] || want+=(golang-github-containernetworking-plugin-dnsname)
fi
[ ${#want[@]} -eq 0 ] && exit 0
ci=false; case "${CI:-}" in 1|true|TRUE|yes) ci=true ;; esac
fail() {
  if $ci; then echo "system-deps: ERROR: $*" >&2; exit 1; fi
  echo "system-deps: WARNING: $* (tests that need them will skip)" >&2; exit 0
}
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || fail "please install: ${want[*]} (no root, no sudo)"
  SUDO="sudo"
fi
echo "system-deps: installing ${want[*]}" >&2
$SUDO apt-get update -q >/dev/null 2>&1 || true
if ! DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${want[@]}" >/dev/null; then
  fail "apt-get could not install: ${want[*]}"
fi
