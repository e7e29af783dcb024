#!/usr/bin/env bash
# The act stand-in for actions/checkout with a ref: the workspace becomes that commit of the local bare origin.
set -euo pipefail
: "${CONVEYOR_ACT_ORIGIN:?the act test sets CONVEYOR_ACT_ORIGIN to the local bare origin}"
cd "$GITHUB_WORKSPACE"
git init --quiet .
git fetch --quiet --no-tags "$CONVEYOR_ACT_ORIGIN" "$REF"
git checkout --quiet --force --detach FETCH_HEAD
git clean --quiet -ffdx
echo "checked out $(git rev-parse HEAD) ($REF) from the local origin"
