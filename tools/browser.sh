#!/usr/bin/env bash
# Headless Chromium and its WebDriver from Debian's packages, for the web console's tests in a
# real browser (tests/e2e/test_console.py, decision 99). Run by `make test-e2e` (so by
# `make test`) before the suite, as tools/containers.sh installs docker.io: nothing to do when
# both are there; installed with apt-get otherwise (CI runs as root on a fresh Debian machine).
# Where they cannot be installed (no apt-get, or not root), it says so and the browser test
# is skipped with the same reason; nothing else depends on them.
set -euo pipefail

log() { echo "[browser] $*" >&2; }

if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
    exit 0
fi
if ! command -v apt-get >/dev/null; then
    log "apt-get is not available: Debian's chromium and chromium-driver cannot be installed;" \
        "the console's browser test (tests/e2e/test_console.py) will be skipped"
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    log "not root: cannot apt-get install chromium chromium-driver; install them (as root) or" \
        "the console's browser test (tests/e2e/test_console.py) will be skipped"
    exit 0
fi
log "installing Debian's chromium and chromium-driver (headless browser for the console tests)"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    chromium chromium-driver >/dev/null
log "$(chromium --version 2>/dev/null || echo chromium) and $(chromedriver --version 2>/dev/null | head -n 1)"
