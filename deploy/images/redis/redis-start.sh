#!/bin/sh
# As the official redis image does: a redis-server started without a config file listens on every
# interface with protected mode off (the container network is the boundary), whatever the
# command's other options (compose gives its own: --appendonly yes ...).
if [ "${1:-}" = redis-server ]; then
    shift
    exec redis-server --protected-mode no --bind "0.0.0.0" "$@"
fi
exec "$@"
