#!/usr/bin/env bash
# Installs the Debian packages the stack and the tests use, when missing and when we can.
# redis-server runs the embedded Redis; kcat, prometheus (promtool) and chromium serve tests.
set -euo pipefail
want=()
command -v redis-server >/dev/null || want+=(redis-server)
command -v kcat >/dev/null || want+=(kcat)
command -v promtool >/dev/null || want+=(prometheus)
command -v chromium >/dev/null || want+=(chromium)
[ ${#want[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] && ! command -v sudo >/dev/null; then
  echo "system-deps: please install: ${want[*]} (tests that need them will skip or fail)" >&2
  exit 0
fi
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
if [ "${1:-}" = "--run-only" ]; then
  # make run needs only redis-server.
  want=(); command -v redis-server >/dev/null || want+=(redis-server)
  [ ${#want[@]} -eq 0 ] && exit 0
fi
echo "system-deps: installing ${want[*]}" >&2
$SUDO apt-get update -q >/dev/null 2>&1 || true
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${want[@]}" >/dev/null
