#!/usr/bin/env bash
# Installs Debian's prometheus package (the server and promtool) for the tests that run a real Prometheus on
# loopback (the canary analysis, the dashboard's panels, `make stack`) and the alert rules' `promtool test rules`.
# Idempotent: does nothing when both binaries are already on PATH. Needs root (or sudo) and apt.
set -euo pipefail

if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
  echo "prometheus: $(prometheus --version 2>&1 | head -n 1)"
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends prometheus
# The package starts a system service where systemd runs; the test starts its own server on a free port.
echo "prometheus: $(prometheus --version 2>&1 | head -n 1)"
