#!/usr/bin/env bash
# Install headless Chromium (Debian package `chromium`) for tests/test_report.py if it is missing.
# Needs root or sudo (apt-get). Idempotent: does nothing when chromium is already on PATH, and nothing at all with
# GENDISTILL_SKIP_BROWSER=1 (the report test then skips only its browser check): a login node without sudo runs
# `GENDISTILL_SKIP_BROWSER=1 make test`.
set -euo pipefail
if [ "${GENDISTILL_SKIP_BROWSER:-0}" = "1" ]; then
    echo "GENDISTILL_SKIP_BROWSER=1: Chromium not installed; the report test skips its browser check"
    exit 0
fi
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
        echo "Chromium is missing and installing it needs root or sudo (apt-get install chromium)." >&2
        echo "Fix: install the Debian package chromium, or run the tests with GENDISTILL_SKIP_BROWSER=1." >&2
        exit 1
    fi
    SUDO=sudo
else
    SUDO=
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends chromium
command -v chromium
