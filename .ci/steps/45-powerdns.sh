# PowerDNS (authoritative, sqlite3 backend), for the example plugin
# examples/pdnsplugin: its tests start their own pdns_server with the HTTP
# API on free loopback ports over a temporary database and stop it.
# Debian's packages, installed once (~10 s); the package starts no server
# here. The sqlite schema ships with the backend package.
if [ ! -x /usr/sbin/pdns_server ]; then
  step "installing pdns-server"
  apt_install pdns-server pdns-backend-sqlite3 sqlite3
fi
export GLIMPSE_PDNS_BIN=/usr/sbin/pdns_server
export GLIMPSE_PDNS_SCHEMA=/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql
