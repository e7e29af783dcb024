#!/usr/bin/env bash
# Installs the distribution's chromium for the report screenshot test (tests/integration/test_report_screenshots.py),
# which opens every HTML report in headless Chromium with the network blocked. Idempotent: does nothing when a
# chromium binary is already on PATH. Needs root (or sudo) and apt; the test skips, saying so, without the binary.
# Debian names the package chromium; on Ubuntu that name is a transitional package for the snap, which cannot run
# in a container, so there the test uses whatever chromium or google-chrome is already installed (GitHub's
# ubuntu-latest runners carry google-chrome).
set -euo pipefail

for binary in chromium chromium-browser google-chrome; do
  if command -v "$binary" >/dev/null 2>&1; then
    echo "chromium: $("$binary" --version 2>/dev/null | head -n 1)"
    exit 0
  fi
done
# shellcheck source=/dev/null # os-release is shell assignments
. /etc/os-release
if [ "${ID:-}" != debian ]; then
  echo "chromium: not installed; this script installs Debian's package only (this is ${ID:-unknown})" >&2
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core \
  >/dev/null
echo "chromium: $(chromium --version 2>/dev/null | head -n 1)"
