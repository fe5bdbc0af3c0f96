# One image per Outpost process: `docker build --build-arg SERVICE=gateway -t outpost-gateway .`
# SERVICE is one of identity, devices, readings, alerting, exports, fleet, gateway. The image
# runs `outpost-<SERVICE>` (CMD `serve`; `migrate` and the service's other commands as arguments)
# as an unprivileged user; `outpost-admin` is in every image. docs/operations.md.
# No `# syntax=` line: BuildKit's built-in frontend builds this file (`RUN --mount`,
# `COPY --chmod`), so a build needs no frontend image from a registry (decision 80).
#
# Where PyPI is reached through a TLS-inspecting proxy or a private index, give the build
# the host's CA bundle and index (both optional; tools/containers.sh does it):
#   --secret id=ca-bundle,src=/etc/ssl/certs/ca-certificates.crt --build-arg INDEX_URL=...

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: wheels of the workspace members, then a virtualenv from the lock file ---------
FROM ${PYTHON_IMAGE} AS build
ARG SERVICE
ARG UV_VERSION=0.13.9
ARG INDEX_URL=
RUN case "${SERVICE}" in \
      identity|devices|readings|alerting|exports|fleet|gateway) ;; \
      *) echo "--build-arg SERVICE=<identity|devices|readings|alerting|exports|fleet|gateway> (got '${SERVICE}')" >&2; exit 1 ;; \
    esac
# The CA bundle, when given, is trusted by pip and uv for these steps only (a secret mount:
# never in a layer).
RUN --mount=type=secret,id=ca-bundle,target=/run/secrets/ca-bundle \
    if [ -s /run/secrets/ca-bundle ]; then export PIP_CERT=/run/secrets/ca-bundle; fi \
 && if [ -n "${INDEX_URL}" ]; then export PIP_INDEX_URL="${INDEX_URL}"; fi \
 && pip install --no-cache-dir "uv==${UV_VERSION}"
# uv's cache is a BuildKit cache mount: downloads are kept between builds on one machine,
# never in a layer.
ENV UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never UV_CACHE_DIR=/var/cache/uv
WORKDIR /src
COPY pyproject.toml uv.lock ./
COPY libs libs
COPY services services
# The service's locked third-party dependencies (no dev group), then wheels of the three
# workspace members it runs (contracts, kit, itself), installed without resolving anything.
RUN --mount=type=secret,id=ca-bundle,target=/run/secrets/ca-bundle \
    --mount=type=cache,target=/var/cache/uv \
    if [ -s /run/secrets/ca-bundle ]; then export SSL_CERT_FILE=/run/secrets/ca-bundle; fi \
 && if [ -n "${INDEX_URL}" ]; then export UV_INDEX_URL="${INDEX_URL}"; fi \
 && uv export --frozen --no-dev --no-emit-workspace --no-hashes \
        --package "outpost-${SERVICE}" -o /tmp/requirements.txt \
 && uv build --wheel --out-dir /wheels --package outpost-contracts \
 && uv build --wheel --out-dir /wheels --package outpost-kit \
 && uv build --wheel --out-dir /wheels --package "outpost-${SERVICE}" \
 && uv venv /opt/outpost \
 && uv pip install --python /opt/outpost/bin/python --no-deps \
        -r /tmp/requirements.txt /wheels/*.whl \
 && ln -s "outpost-${SERVICE}" /opt/outpost/bin/outpost-service \
 && /opt/outpost/bin/python -c "import importlib, sys; importlib.import_module(f'outpost_{sys.argv[1]}.bootstrap')" "${SERVICE}"

# --- runtime: the interpreter, the virtualenv, nothing else ---------------------------------
FROM ${PYTHON_IMAGE} AS runtime
ARG SERVICE
LABEL org.opencontainers.image.title="outpost-${SERVICE}" \
      org.opencontainers.image.source="https://github.com/outpost/outpost" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 outpost \
 && useradd --system --uid 10001 --gid outpost --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin outpost \
 && install -d -o outpost -g outpost -m 0700 /etc/outpost /var/lib/outpost
COPY --from=build /opt/outpost /opt/outpost
COPY --chmod=0755 deploy/docker/entrypoint.sh /usr/local/bin/outpost-entrypoint
ENV PATH=/opt/outpost/bin:${PATH} \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    OUTPOST_SERVICE=${SERVICE}
WORKDIR /var/lib/outpost
USER 10001:10001
# The gateway's HTTP port; every other service's /healthz, /readyz and /metrics port.
EXPOSE 8080 9090
ENTRYPOINT ["/usr/local/bin/outpost-entrypoint"]
CMD ["serve"]
