#!/usr/bin/env bash
# `make stack` / `make stack-down`: the local stack as plain processes, no containers. `up` starts what is not
# running yet (an MLflow server on sqlite, `conveyor serve` on the models/ bundle, a loopback HTTP server for the
# monitor's metrics file reports/monitor.prom, and Debian's Prometheus with stack/prometheus.yml and the alert
# rules stack/rules.yml); `down` stops every one of them. Everything listens on 127.0.0.1 only. Pid files and
# logs are in $STACK_DIR (build/stack, git-ignored). MODEL_DIR picks another bundle than models/.
set -euo pipefail

STACK_DIR=${STACK_DIR:-build/stack}
MODEL_DIR=${MODEL_DIR:-models}
HERE=$(cd "$(dirname "$0")" && pwd)
# The ports stack/prometheus.yml, stack/grafana/datasources.yaml and compose.yaml name.
MLFLOW_PORT=15000
API_PORT=18080
MONITOR_PORT=19092
PROMETHEUS_PORT=19090
SERVICES=(mlflow api monitor-metrics prometheus)

running() {  # running NAME: its pid file names a live process
  local pid_file="$STACK_DIR/$1.pid"
  [[ -f $pid_file ]] && kill -0 "$(cat "$pid_file")" 2>/dev/null
}

url_of() {
  case $1 in
    mlflow) echo "http://127.0.0.1:$MLFLOW_PORT/health" ;;
    api) echo "http://127.0.0.1:$API_PORT/readyz" ;;
    monitor-metrics) echo "http://127.0.0.1:$MONITOR_PORT/" ;;
    prometheus) echo "http://127.0.0.1:$PROMETHEUS_PORT/-/ready" ;;
  esac
}

port_of() {
  case $1 in
    mlflow) echo "$MLFLOW_PORT" ;;
    api) echo "$API_PORT" ;;
    monitor-metrics) echo "$MONITOR_PORT" ;;
    prometheus) echo "$PROMETHEUS_PORT" ;;
  esac
}

command_of() {
  case $1 in
    mlflow)
      echo mlflow server --backend-store-uri "sqlite:///$STACK_DIR/mlflow.db" \
        --artifacts-destination "$STACK_DIR/mlartifacts" --host 127.0.0.1 --port "$MLFLOW_PORT" --workers 1 ;;
    api) echo env MODEL_DIR="$MODEL_DIR" conveyor serve --host 127.0.0.1 --port "$API_PORT" ;;
    monitor-metrics) echo python -m http.server "$MONITOR_PORT" --bind 127.0.0.1 --directory reports ;;
    prometheus)
      echo prometheus --config.file="$HERE/prometheus.yml" --storage.tsdb.path="$STACK_DIR/prometheus" \
        --web.listen-address="127.0.0.1:$PROMETHEUS_PORT" --web.enable-lifecycle ;;
  esac
}

port_taken() {  # something answers on the port
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

wait_up() {  # wait_up NAME: poll its URL until it answers (any HTTP status), or fail with its log's tail
  local name=$1 url
  url=$(url_of "$name")
  for _ in $(seq 1 180); do
    if [[ $name == monitor-metrics ]]; then  # any answer: a 404 until conveyor monitor writes the file
      curl -s -o /dev/null "$url" && return 0
    else
      curl -sf -o /dev/null "$url" && return 0
    fi
    if ! running "$name"; then break; fi
    sleep 0.5
  done
  echo "stack: $name did not come up at $url; the end of $STACK_DIR/$name.log:" >&2
  tail -n 20 "$STACK_DIR/$name.log" >&2 || true
  return 1
}

up() {
  mkdir -p "$STACK_DIR"
  local started=0 name
  for name in "${SERVICES[@]}"; do
    if running "$name"; then
      continue
    fi
    if port_taken "$(port_of "$name")"; then
      echo "stack: port $(port_of "$name") ($name) is taken by another process; stop it first." >&2
      return 1
    fi
    if [[ $name == api && ! -f $MODEL_DIR/metadata.json ]]; then
      echo "stack: no model bundle in $MODEL_DIR: run \`make run\` (or set MODEL_DIR) first." >&2
      return 1
    fi
    # setsid: each service leads its own process group, so that `down` stops it with its children.
    # shellcheck disable=SC2046 # the command's words, split on purpose
    setsid $(command_of "$name") >"$STACK_DIR/$name.log" 2>&1 < /dev/null &
    echo $! >"$STACK_DIR/$name.pid"
    started=$((started + 1))
  done
  for name in "${SERVICES[@]}"; do
    wait_up "$name" || { down; return 1; }
  done
  if [[ $started -eq 0 ]]; then
    echo "stack: already running (make stack-down stops it)"
  else
    echo "stack: running"
  fi
  echo "  MLflow      http://127.0.0.1:$MLFLOW_PORT"
  echo "  API         http://127.0.0.1:$API_PORT (model bundle $MODEL_DIR)"
  echo "  Prometheus  http://127.0.0.1:$PROMETHEUS_PORT (rules: stack/rules.yml; alerts at /alerts)"
  echo "  monitor     http://127.0.0.1:$MONITOR_PORT/monitor.prom (reports/monitor.prom, from conveyor monitor)"
  echo "  logs and pid files in $STACK_DIR"
}

down() {
  local name pid stopped=0
  for name in "${SERVICES[@]}"; do
    local pid_file="$STACK_DIR/$name.pid"
    [[ -f $pid_file ]] || continue
    pid=$(cat "$pid_file")
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 60); do
        kill -0 -- "-$pid" 2>/dev/null || break
        sleep 0.5
      done
      kill -KILL -- "-$pid" 2>/dev/null || true
      stopped=$((stopped + 1))
    fi
    rm -f "$pid_file"
  done
  echo "stack: stopped $stopped process groups"
}

case ${1:-} in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
