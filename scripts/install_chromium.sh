#!/usr/bin/env bash
# Installs Debian's Chromium for the headless test of the HTML evaluation report (tests/test_report.py),
# which is skipped where chromium is missing. Idempotent; run as root.
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
    exit 0
fi
if [[ $EUID -ne 0 ]]; then
    echo "run as root (apt-get install needs it)" >&2
    exit 1
fi

apt-get update -qq
# fonts-liberation and fonts-dejavu-core give screenshots real glyphs instead of boxes.
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    chromium fonts-liberation fonts-dejavu-core
