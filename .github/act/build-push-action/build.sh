#!/usr/bin/env bash
# act stand-in for docker/build-push-action: podman or buildah build, push to a local OCI layout, output the digest.
set -euo pipefail
builder=""
for candidate in podman buildah; do
  if command -v "$candidate" >/dev/null 2>&1; then builder="$candidate" && break; fi
done
if [ -z "$builder" ]; then
  echo "::error::the image stand-ins need podman or buildah and neither is installed; run scripts/ci/setup-podman.sh (make image-test does)"
  exit 1
fi
base="${CONVEYOR_ACT_BASE_IMAGE:-localhost/debian-bookworm:base}"
if ! "$builder" image exists "$base" 2>/dev/null && ! "$builder" inspect --type image "$base" >/dev/null 2>&1; then
  echo "::error::the local base image $base is missing; run scripts/ci/setup-podman.sh (make image-test does)"
  exit 1
fi

mapfile -t tags < <(printf '%s\n' "$IMAGE_TAGS" | sed '/^[[:space:]]*$/d')
args=(--build-arg "BASE_IMAGE=$base")
[ -n "$TARGET" ] && args+=(--target "$TARGET")
[ -n "$DOCKERFILE" ] && args+=(--file "$DOCKERFILE")
for tag in "${tags[@]}"; do args+=(--tag "$tag"); done
while IFS= read -r line; do [ -n "$line" ] && args+=(--build-arg "$line"); done <<< "$BUILD_ARGS"
while IFS= read -r line; do [ -n "$line" ] && args+=(--label "$line"); done <<< "$LABELS"
[ -n "$PROVENANCE$SBOM" ] && echo "::notice::provenance and SBOM attestations are made by BuildKit on GitHub, not by this stand-in"

if [ "$builder" = podman ] && [ -f scripts/ci/build_image.py ]; then
  python scripts/ci/build_image.py "${args[@]}" "$CONTEXT"
elif [ "$builder" = podman ]; then
  podman build --format docker "${args[@]}" "$CONTEXT"
else
  buildah build --isolation chroot --format docker "${args[@]}" "$CONTEXT"
fi
echo "imageid=$("$builder" inspect --type image --format '{{.Id}}' "${tags[0]}")" >> "$GITHUB_OUTPUT"

if [ "$PUSH" = true ]; then
  registry="${CONVEYOR_ACT_REGISTRY:?set CONVEYOR_ACT_REGISTRY to the OCI layout folder standing in for the registry}"
  digestfile="$(mktemp)"
  for tag in "${tags[@]}"; do
    "$builder" push --quiet --digestfile "$digestfile" "$tag" "oci:$registry:${tag##*:}"
  done
  echo "digest=$(cat "$digestfile")" >> "$GITHUB_OUTPUT"
  echo "pushed ${tags[*]} as $(cat "$digestfile") to the OCI layout $registry"
  rm -f "$digestfile"
fi
