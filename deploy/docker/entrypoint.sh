#!/bin/sh
# The image's entry point: `outpost-<service> "$@"` (the service the image was built for).
# OUTPOST_ENV_FILE, when set, names a file of KEY=VALUE lines (`outpost-admin deploy init`'s
# env/<service>.env) exported first, each value taken literally (never evaluated by the
# shell, so a DSN's `&` or `$` stays as written): docker compose's generated secrets.
# `outpost-admin ...` as the first argument runs the operator tool instead.
set -eu
if [ -n "${OUTPOST_ENV_FILE:-}" ]; then
    if [ ! -r "${OUTPOST_ENV_FILE}" ]; then
        echo "outpost-entrypoint: OUTPOST_ENV_FILE=${OUTPOST_ENV_FILE} is not readable" >&2
        exit 78
    fi
    while IFS= read -r line || [ -n "${line}" ]; do
        case "${line}" in
            '' | '#'*) continue ;;
            [A-Za-z_]*=*) export "${line?}" ;;
            *) echo "outpost-entrypoint: not KEY=VALUE in ${OUTPOST_ENV_FILE}" >&2; exit 78 ;;
        esac
    done < "${OUTPOST_ENV_FILE}"
fi
case "${1:-}" in
    outpost-admin) shift; exec outpost-admin "$@" ;;
esac
exec outpost-service "$@"
