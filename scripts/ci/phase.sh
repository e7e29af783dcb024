#!/usr/bin/env bash
# Time the phases of `make test` and `make check`, so that a run shows where its minutes went.
#   phase.sh NAME COMMAND...   run COMMAND, print "phase NAME: S s" whatever its exit status, and exit with it
#   phase.sh reset             forget earlier phases
#   phase.sh summary           print every phase timed since the reset, in the order they ended
set -uo pipefail

LOG="${CONVEYOR_PHASE_LOG:-build/phases.txt}"

case "${1:-}" in
  reset)
    mkdir -p "$(dirname "$LOG")" && : >"$LOG"
    ;;
  summary)
    echo "== phase times"
    cat "$LOG"
    ;;
  "")
    echo "usage: $0 NAME COMMAND... | reset | summary" >&2
    exit 2
    ;;
  *)
    name="$1"
    shift
    start=$(date +%s)
    "$@"
    status=$?
    took=$(($(date +%s) - start))
    line=$(printf '%-28s %4d s  (%dm%02ds)%s' "$name" "$took" $((took / 60)) $((took % 60)) \
      "$([ "$status" -eq 0 ] || echo "  FAILED, exit $status")")
    echo "== phase $line"
    mkdir -p "$(dirname "$LOG")" && echo "$line" >>"$LOG"
    exit "$status"
    ;;
esac
