#!/usr/bin/env bash
# act stand-in for actions/setup-python: an installed .venv stands in for Python plus `make install`.
set -euo pipefail
venv="${CONVEYOR_ACT_VENV:?set CONVEYOR_ACT_VENV to an installed .venv (make install) for act to use}"
have="$("$venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
if [ -n "${WANTED:-}" ] && [ "$have" != "$WANTED" ] && [[ "$have" != "$WANTED".* ]]; then
  echo "::error::python-version $WANTED was asked for; $venv has Python $have"
  exit 1
fi
mkdir -p .venv
for entry in "$venv"/*; do
  ln -sfn "$entry" ".venv/$(basename "$entry")"
done
touch .venv/.installed
{
  echo "PYTHONPATH=$PWD/src"
  echo "PIP_DISABLE_PIP_VERSION_CHECK=1"
} >> "$GITHUB_ENV"
echo "$PWD/.venv/bin" >> "$GITHUB_PATH"
echo "python-version=$have" >> "$GITHUB_OUTPUT"
echo "Python $have from $venv"
