# A local stand-in for python:3.11-slim-bookworm (`make test-containers` on a machine that
# reaches no image registry): Debian's Python 3.11 on a debootstrap minbase, with `python`
# and `pip` on PATH like the official image. Only used when the real image cannot be pulled.
ARG BASE_IMAGE=outpost-local/debian:bookworm-minbase
FROM ${BASE_IMAGE}
ENV LANG=C.UTF-8
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        python3.11 python3-pip ca-certificates \
 && rm -rf /var/lib/apt/lists/* /usr/share/doc/* /usr/share/man/* \
 && rm -f /usr/lib/python3.11/EXTERNALLY-MANAGED \
 && ln -s /usr/bin/python3.11 /usr/local/bin/python \
 && ln -s /usr/bin/python3.11 /usr/local/bin/python3 \
 && ln -s /usr/bin/pip3 /usr/local/bin/pip
CMD ["python3"]
