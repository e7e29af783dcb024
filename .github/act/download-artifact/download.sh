#!/usr/bin/env bash
# act stand-in for actions/download-artifact: copy CONVEYOR_ACT_ARTIFACTS/<name>/ into the destination.
set -euo pipefail
store="${CONVEYOR_ACT_ARTIFACTS:?set CONVEYOR_ACT_ARTIFACTS to the folder standing in for the artifact store}"
if [ ! -d "$store/$NAME" ]; then
  echo "::error::Unable to download artifact(s): Artifact not found for name: $NAME"
  exit 1
fi
mkdir -p "$DESTINATION"
cp -a "$store/$NAME/." "$DESTINATION/"
echo "download-path=$(cd "$DESTINATION" && pwd)" >> "$GITHUB_OUTPUT"
echo "downloaded $NAME to $DESTINATION"
