# Start a throw-away PostgreSQL server for the journal tests and export its URL.
# Sourced by .ci/run; safe to call when a server from an earlier call is still running.
start_postgres() {
  local bindir
  bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  if [ -z "$bindir" ]; then
    echo "PostgreSQL binaries not found under /usr/lib/postgresql" >&2
    return 1
  fi
  local dir=${RECLOOP_PG_DIR:-/tmp/recloop-pg}
  local port=${RECLOOP_PG_PORT:-54329}
  if ! id postgres >/dev/null 2>&1; then useradd -r -m postgres; fi
  if [ ! -f "$dir/PG_VERSION" ]; then
    rm -rf "$dir"; mkdir -p "$dir"; chown postgres "$dir"
    su postgres -c "$bindir/initdb -D $dir -A trust -U postgres" >/dev/null
  fi
  if ! su postgres -c "$bindir/pg_ctl -D $dir status" >/dev/null 2>&1; then
    su postgres -c "$bindir/pg_ctl -D $dir -o '-p $port -k /tmp -c listen_addresses=127.0.0.1' -l $dir/log -w start" >/dev/null
  fi
  RECLOOP_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/postgres"
  echo "PostgreSQL at $RECLOOP_TEST_POSTGRES_URL"
}
