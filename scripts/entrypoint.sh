#!/bin/sh
# The container's entrypoint (and what CI runs outside Docker to prove it works):
# migrate the database, then serve. Settings come from MGDIARY_* variables.
set -eu
exec mgdiary serve --host "${MGDIARY_HOST:-0.0.0.0}" --port "${MGDIARY_PORT:-8000}" \
    --forwarded-allow-ips "${MGDIARY_FORWARDED_ALLOW_IPS:-127.0.0.1}" "$@"
