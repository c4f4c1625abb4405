#!/usr/bin/env bash
# Install the system's Chromium for the report's browser tests when it is missing and can
# be installed (Debian-based, as root). Never downloads a browser build of its own; where
# Chromium cannot be installed the browser tests skip, saying why.
if command -v chromium >/dev/null || command -v chromium-browser >/dev/null; then
    exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "report env: installing chromium from the system's packages"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null && exit 0
fi
echo "report env: Chromium is not installed and cannot be installed here: the browser tests skip"
