#!/bin/sh
# The image's entry point: `outpost-<service> "$@"` (the service the image was built for).
# OUTPOST_ENV_FILE, when set, names a file of KEY=VALUE lines (`outpost-admin deploy init`'s
# env/<service>.env) read first: docker compose's generated secrets. `outpost-admin ...` as
# the first argument runs the operator tool instead (streams, deploy).
set -eu
if [ -n "${OUTPOST_ENV_FILE:-}" ]; then
    if [ ! -r "${OUTPOST_ENV_FILE}" ]; then
        echo "outpost-entrypoint: OUTPOST_ENV_FILE=${OUTPOST_ENV_FILE} is not readable" >&2
        exit 78
    fi
    set -a
    # shellcheck disable=SC1090
    . "${OUTPOST_ENV_FILE}"
    set +a
fi
case "${1:-}" in
    outpost-admin) shift; exec outpost-admin "$@" ;;
esac
exec outpost-service "$@"
