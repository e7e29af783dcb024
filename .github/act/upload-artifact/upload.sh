#!/usr/bin/env bash
# act stand-in for actions/upload-artifact: copy one file or folder to CONVEYOR_ACT_ARTIFACTS/<name>/.
set -euo pipefail
store="${CONVEYOR_ACT_ARTIFACTS:?set CONVEYOR_ACT_ARTIFACTS to the folder standing in for the artifact store}"
if [ "$(printf '%s\n' "$SOURCE" | grep -c .)" -ne 1 ]; then
  echo "::error::this stand-in uploads one path; got: $SOURCE"
  exit 1
fi
if [ ! -e "$SOURCE" ]; then
  case "$IF_NO_FILES" in
    error) echo "::error::No files were found with the provided path: $SOURCE. No artifacts will be uploaded."; exit 1 ;;
    warn) echo "::warning::No files were found with the provided path: $SOURCE. No artifacts will be uploaded." ;;
  esac
  exit 0
fi
target="$store/$NAME"
rm -rf "$target"
mkdir -p "$target"
if [ -d "$SOURCE" ]; then cp -a "$SOURCE/." "$target/"; else cp -a "$SOURCE" "$target/"; fi
echo "artifact-id=$target" >> "$GITHUB_OUTPUT"
echo "uploaded $SOURCE as $NAME ($(find "$target" -type f | wc -l) files)"
