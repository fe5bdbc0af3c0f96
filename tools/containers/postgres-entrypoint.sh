#!/bin/sh
# The stand-in's entry point: initdb on the first start (superuser POSTGRES_USER with
# POSTGRES_PASSWORD, database POSTGRES_DB, password authentication from anywhere), then
# postgres in the foreground as the postgres user, listening on every address.
set -eu
as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }
: "${POSTGRES_USER:=postgres}" "${POSTGRES_DB:=${POSTGRES_USER}}" "${POSTGRES_PASSWORD:?}"
mkdir -p "${PGDATA}" /run/postgresql
chown postgres:postgres "${PGDATA}" /run/postgresql
chmod 0700 "${PGDATA}"
if [ ! -s "${PGDATA}/PG_VERSION" ]; then
    printf '%s\n' "${POSTGRES_PASSWORD}" > /tmp/pwfile
    chown postgres /tmp/pwfile
    as_postgres initdb -D "${PGDATA}" -U "${POSTGRES_USER}" --pwfile=/tmp/pwfile \
        --auth-local=trust --auth-host=scram-sha-256 >/dev/null
    rm -f /tmp/pwfile
    echo "host all all all scram-sha-256" >> "${PGDATA}/pg_hba.conf"
    if [ "${POSTGRES_DB}" != postgres ]; then
        as_postgres postgres --single -D "${PGDATA}" postgres >/dev/null <<SQL
CREATE DATABASE "${POSTGRES_DB}";
SQL
    fi
fi
exec setpriv --reuid=postgres --regid=postgres --init-groups postgres -D "${PGDATA}" -c listen_addresses='*' "$@"
