#!/usr/bin/env bash
# Shared by the image stand-ins: print the local image builder (podman, else buildah), or fail saying how to get one.
set -euo pipefail
for candidate in podman buildah; do
  if command -v "$candidate" >/dev/null 2>&1; then
    echo "$candidate"
    exit 0
  fi
done
echo "::error::the image stand-ins need podman or buildah and neither is installed; run scripts/ci/setup-podman.sh (make image-test does)" >&2
exit 1
