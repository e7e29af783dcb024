#!/usr/bin/env bash
# Installs Debian's chromium for the report screenshot test (tests/integration/test_report_screenshots.py), which
# opens every HTML report in headless Chromium with the network blocked, with the fonts the reports need: DejaVu
# for text and Noto Color Emoji for the gate table's ✅/❌. Idempotent: returns at once when all are installed.
# Needs root (or sudo) and apt. On Ubuntu the chromium package is a shim for the snap, which a container cannot
# run: there it installs nothing and the test uses a chromium or google-chrome already on PATH (GitHub's
# ubuntu-latest runners carry google-chrome), or skips, saying so.
set -euo pipefail

PACKAGES=(chromium fonts-dejavu-core fonts-noto-color-emoji)

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

browser_version() {
  local binary
  for binary in chromium chromium-browser google-chrome; do
    if command -v "$binary" >/dev/null 2>&1; then
      "$binary" --version 2>/dev/null | head -n 1
      return
    fi
  done
  echo "none on PATH"
}

# shellcheck source=/dev/null # os-release is shell assignments
. /etc/os-release
if [ "${ID:-}" != debian ]; then
  echo "chromium: $(browser_version) (this is ${ID:-unknown}: only Debian's package is installed by this script)"
  exit 0
fi
missing=()
for package in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "chromium: $(browser_version)"
