#!/usr/bin/env bash
# Install Debian's Chromium for the browser test (tests/test_browser.py), non-interactively.
# Playwright drives it through executable_path=/usr/bin/chromium; no browser is downloaded by
# Playwright itself. Safe to run repeatedly: does nothing when Chromium is already there.
set -euo pipefail

CHROMIUM=/usr/bin/chromium

if [ -x "$CHROMIUM" ]; then
    echo "install-browser: $("$CHROMIUM" --version 2>/dev/null || echo chromium) already installed"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-browser: apt-get not found; install Chromium at $CHROMIUM by other means," >&2
    echo "  or the browser test will be skipped." >&2
    exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo -n"
    else
        echo "install-browser: not root and no sudo: cannot apt-get install chromium." >&2
        exit 1
    fi
fi

export DEBIAN_FRONTEND=noninteractive
echo "install-browser: apt-get install chromium"
$SUDO apt-get update -qq || echo "install-browser: apt-get update failed; trying the existing package lists" >&2
$SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null

if [ ! -x "$CHROMIUM" ]; then
    echo "install-browser: the chromium package did not provide $CHROMIUM" >&2
    exit 1
fi
echo "install-browser: $("$CHROMIUM" --version 2>/dev/null || echo chromium) installed"
