#!/usr/bin/env bash
# The curves of this run's model (reports/plots/*.csv, written by `conveyor evaluate`) against main's, drawn by
# `dvc plots diff` on one chart each, as one self-contained page: reports/plots.html.
#
# usage: scripts/ci/plots-diff.sh [BASELINE]
#   BASELINE  a folder holding main's latest reports (CI's `reports` artifact, so BASELINE/plots/*.csv). Without it,
#             or with no plot data in it, the page shows this workspace's plots alone (`dvc plots show`).
#   PLOTS_HTML  where the page goes (default reports/plots.html); image plots, if any, go to static/ beside it.
#
# Main's plot files come from its last CI run, not from git (reports/ is not committed). As `conveyor ci comment`
# does for the metrics, they are written into a throwaway commit on top of HEAD (a temporary index and
# `git commit-tree`: no branch moves), which a tag `main-ci` names for DVC's legend; the tag is deleted on exit.
# DVC's own page loads Vega from a CDN; the template in plots-html/ inlines the vendored copies instead.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ASSETS="$HERE/plots-html"
BASELINE="${1:-}"
OUT="${PLOTS_HTML:-reports/plots.html}"
TAG=main-ci

work="$(mktemp -d)"
tagged=false
cleanup() {
  rm -rf "$work"
  if [ "$tagged" = true ]; then git tag -d "$TAG" >/dev/null; fi
}
trap cleanup EXIT

# The page template with the three scripts inlined where it says <!-- scripts -->.
template="$work/template.html"
{
  sed '/<!-- scripts -->/,$d' "$ASSETS/template.html"
  for script in vega vega-lite vega-embed; do
    printf '<script>\n'
    cat "$ASSETS/$script.min.js"
    printf '\n</script>\n'
  done
  sed '1,/<!-- scripts -->/d' "$ASSETS/template.html"
} >"$template"

files=()
if [ -n "$BASELINE" ] && [ -d "$BASELINE/plots" ]; then
  mapfile -t files < <(find "$BASELINE/plots" -maxdepth 1 -name '*.csv' | sort)
fi

if [ ${#files[@]} -gt 0 ]; then
  export GIT_AUTHOR_NAME=conveyor GIT_AUTHOR_EMAIL=conveyor@localhost
  export GIT_COMMITTER_NAME=conveyor GIT_COMMITTER_EMAIL=conveyor@localhost
  GIT_INDEX_FILE="$work/index" git read-tree HEAD
  for file in "${files[@]}"; do
    blob="$(git hash-object -w -- "$file")"
    GIT_INDEX_FILE="$work/index" git update-index --add --cacheinfo "100644,$blob,reports/plots/$(basename "$file")"
  done
  tree="$(GIT_INDEX_FILE="$work/index" git write-tree)"
  commit="$(git commit-tree "$tree" -p HEAD -m "conveyor: main's plots, for dvc plots diff")"
  git tag "$TAG" "$commit"
  tagged=true
  echo "dvc plots diff: main's plots (${#files[@]} files from $BASELINE) against this workspace"
  dvc plots diff "$TAG" --out "$work/page" --html-template "$template"
else
  echo "dvc plots show: no plots from main to compare with; this workspace's alone"
  dvc plots show --out "$work/page" --html-template "$template"
fi

mkdir -p "$(dirname "$OUT")"
cp "$work/page/index.html" "$OUT"
if [ -d "$work/page/static" ]; then
  rm -rf "$(dirname "$OUT")/static"
  cp -r "$work/page/static" "$(dirname "$OUT")/static"
fi
echo "wrote $OUT"
