# PostgreSQL, for db/postgresdb's tests against a real server. Debian's
# postgresql (15 on bookworm), installed once (~20 s); the package's own
# cluster is not used: each test package runs initdb into a temporary
# directory as the postgres user, starts its own server on a unix socket
# and a free 127.0.0.1 port with fsync off, and stops it at the end.
pg_bindir() {
  local d
  for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && [ -x "$d/postgres" ] && echo "$d"
  done | sort -V | tail -n 1
}
if [ -z "$(pg_bindir)" ]; then
  step "installing postgresql"
  apt_install postgresql
fi
GLIMPSE_PG_BINDIR="$(pg_bindir)"
if [ -z "$GLIMPSE_PG_BINDIR" ]; then
  echo "postgresql installed but no initdb/pg_ctl/postgres under /usr/lib/postgresql/*/bin" >&2
  exit 1
fi
export GLIMPSE_PG_BINDIR
