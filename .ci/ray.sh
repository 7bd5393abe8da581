# Install Ray (PyPI `ray[default]`, in a virtual environment) when missing and start a local head
# for the Ray executor tests; exports RECLOOP_TEST_RAY_ADDRESS (the Jobs REST API).
# Sourced by .ci/run; idempotent: a head started by an earlier call is reused. Returns non-zero
# when the head does not come up, with the log tail.
start_ray() {
  local venv=${RECLOOP_RAY_VENV:-/opt/recloop-ray}
  local port=${RECLOOP_RAY_DASHBOARD_PORT:-8265}
  local address="http://127.0.0.1:$port"
  if ! command -v curl >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq curl >/dev/null || return 1
  fi
  if ! curl -sf "$address/api/version" >/dev/null 2>&1; then
    if [ ! -x "$venv/bin/ray" ]; then
      if ! python3 -m venv "$venv" >/dev/null 2>&1; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null || return 1
        rm -rf "$venv"; python3 -m venv "$venv" || return 1
      fi
      "$venv/bin/pip" install --quiet "ray[default]==2.60.0" || return 1
    fi
    RAY_USAGE_STATS_ENABLED=0 "$venv/bin/ray" start --head --port=6380 \
      --dashboard-host=127.0.0.1 --dashboard-port="$port" --num-cpus=2 \
      --disable-usage-stats >/tmp/recloop-ray-start.log 2>&1 \
      || { tail -20 /tmp/recloop-ray-start.log >&2; return 1; }
    local i
    for i in $(seq 1 120); do
      curl -sf "$address/api/version" >/dev/null 2>&1 && break
      sleep 0.5
    done
    curl -sf "$address/api/version" >/dev/null 2>&1 \
      || { echo "Ray job server did not answer at $address" >&2; tail -20 /tmp/recloop-ray-start.log >&2; return 1; }
  fi
  RECLOOP_TEST_RAY_ADDRESS=$address
  export RECLOOP_TEST_RAY_ADDRESS
  echo "Ray head up: jobs API at $address"
}
