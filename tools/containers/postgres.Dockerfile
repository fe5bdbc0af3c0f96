# A local stand-in for postgres:15-bookworm: Debian's postgresql-15 and an entry point that
# honours what docker-compose.yml uses of the official image (POSTGRES_DB, POSTGRES_USER,
# POSTGRES_PASSWORD, data in /var/lib/postgresql/data, pg_isready).
ARG BASE_IMAGE=outpost-local/debian:bookworm-minbase
FROM ${BASE_IMAGE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql-15 \
 && rm -rf /var/lib/apt/lists/* /usr/share/doc/* /usr/share/man/*
COPY --chmod=0755 postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint
ENV PATH=/usr/lib/postgresql/15/bin:${PATH} PGDATA=/var/lib/postgresql/data
EXPOSE 5432
ENTRYPOINT ["/usr/local/bin/postgres-entrypoint"]
