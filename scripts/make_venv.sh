#!/usr/bin/env bash
# Creates the virtual environment that `make install` fills: Debian's and Ubuntu's system Python refuse
# `pip install` outside one (PEP 668). Those distributions ship venv's pip bootstrap (ensurepip) apart, in
# pythonX.Y-venv; run as root with apt, this installs it, otherwise it says what to install.
# Usage: make_venv.sh DIR [PYTHON]
set -euo pipefail

venv=$1
python=${2:-python3}

if ! "$python" -c 'import ensurepip, venv' 2>/dev/null; then
    version=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    if [[ $EUID -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        echo "$python cannot create a virtual environment (no ensurepip): installing python$version-venv" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "python$version-venv"
    else
        echo "$python cannot create a virtual environment (no ensurepip)." >&2
        echo "On Debian/Ubuntu: sudo apt-get install python$version-venv, then run make again;" >&2
        echo "or activate a virtual environment of your own (make uses \$VIRTUAL_ENV when it is set)." >&2
        exit 1
    fi
fi

"$python" -m venv "$venv"
