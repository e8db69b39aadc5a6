#!/usr/bin/env bash
# Start (or reuse) Debian's PostgreSQL cluster for the test suite.
#
# Runs as root; the server itself runs as the `postgres` user (pg_ctlcluster
# drops privileges). Idempotent: a running cluster, an existing role and an
# existing database are all fine. Listens on 127.0.0.1 only.
#
# On success the last line on stdout is the SQLAlchemy URL for the tests:
#   postgresql+psycopg://ledger:ledger@127.0.0.1:5432/ledger_test
# (.ci/run captures it into LEDGER_NET_TEST_PG_URL.) All progress goes to
# stderr. Settings can be overridden through the environment:
#   LEDGER_CI_PG_VERSION (15)  LEDGER_CI_PG_CLUSTER (main)  LEDGER_CI_PG_PORT (5432)
#   LEDGER_CI_PG_USER (ledger) LEDGER_CI_PG_PASSWORD (ledger) LEDGER_CI_PG_DB (ledger_test)
set -euo pipefail

PG_VERSION="${LEDGER_CI_PG_VERSION:-15}"
PG_CLUSTER="${LEDGER_CI_PG_CLUSTER:-main}"
PG_PORT="${LEDGER_CI_PG_PORT:-5432}"
PG_USER="${LEDGER_CI_PG_USER:-ledger}"
PG_PASSWORD="${LEDGER_CI_PG_PASSWORD:-ledger}"
PG_DB="${LEDGER_CI_PG_DB:-ledger_test}"
PG_HOST=127.0.0.1
READY_TIMEOUT_S=60

PG_BIN="/usr/lib/postgresql/${PG_VERSION}/bin"
CONF_DIR="/etc/postgresql/${PG_VERSION}/${PG_CLUSTER}"
CI_CONF="${CONF_DIR}/conf.d/90-ledger-net-ci.conf"

log() { printf '[start-postgres] %s\n' "$*" >&2; }
die() { printf '[start-postgres] ERROR: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root (it manages the system cluster and runs psql as postgres)"
[ -x "${PG_BIN}/postgres" ] || die "${PG_BIN}/postgres not found: install Debian's postgresql package (apt-get install postgresql)"
command -v pg_ctlcluster >/dev/null || die "pg_ctlcluster not found: install postgresql-common"
getent passwd postgres >/dev/null || die "no 'postgres' system user (the postgresql package creates it)"

# Only simple identifiers: they are interpolated into SQL below.
for v in "$PG_USER" "$PG_DB"; do
    [[ "$v" =~ ^[a-z_][a-z0-9_]*$ ]] || die "invalid identifier: $v"
done
[[ "$PG_PASSWORD" != *"'"* ]] || die "password must not contain a single quote"

# --- 1. the cluster exists -------------------------------------------------
# The package's postinst normally creates <version>/main; create it if not.
if ! pg_lsclusters -h | awk -v v="$PG_VERSION" -v c="$PG_CLUSTER" '$1==v && $2==c {f=1} END {exit !f}'; then
    log "creating cluster ${PG_VERSION}/${PG_CLUSTER}"
    # Explicit UTF8/C.UTF-8: without a locale in the environment (env -i, CI)
    # initdb would pick SQL_ASCII, whose text the drivers return as bytes.
    pg_createcluster -p "$PG_PORT" --locale C.UTF-8 --encoding UTF8 "$PG_VERSION" "$PG_CLUSTER" >&2
fi

# --- 2. our settings: loopback only, fixed port ------------------------------
# Debian's postgresql.conf ends with include_dir = 'conf.d', so this file wins.
mkdir -p "${CONF_DIR}/conf.d"
desired_conf="# Written by ledger_net's .ci/start-postgres.sh (test cluster settings).
listen_addresses = '${PG_HOST}'
port = ${PG_PORT}
# test data is throwaway: don't wait for WAL flushes on commit
synchronous_commit = off
"
conf_changed=0
if [ ! -f "$CI_CONF" ] || [ "$(cat "$CI_CONF")" != "$(printf '%s' "$desired_conf")" ]; then
    printf '%s' "$desired_conf" > "$CI_CONF"
    chmod 644 "$CI_CONF"
    conf_changed=1
    log "wrote ${CI_CONF}"
fi

# --- 3. the server runs ------------------------------------------------------
# pg_ctlcluster run as root switches to the cluster owner (postgres) itself.
# --skip-systemctl-redirect: start it directly even where systemd is PID 1.
status=0
pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" status >/dev/null 2>&1 || status=$?
if [ "$status" -eq 0 ]; then
    if [ "$conf_changed" -eq 1 ]; then
        log "cluster running but settings changed: restarting"
        pg_ctlcluster --skip-systemctl-redirect "$PG_VERSION" "$PG_CLUSTER" restart >&2
    else
        log "cluster ${PG_VERSION}/${PG_CLUSTER} already running"
    fi
else
    log "starting cluster ${PG_VERSION}/${PG_CLUSTER}"
    if ! pg_ctlcluster --skip-systemctl-redirect "$PG_VERSION" "$PG_CLUSTER" start >&2; then
        log "start failed; last lines of the server log:"
        tail -n 30 "/var/log/postgresql/postgresql-${PG_VERSION}-${PG_CLUSTER}.log" >&2 || true
        die "could not start PostgreSQL ${PG_VERSION}/${PG_CLUSTER}"
    fi
fi

# --- 4. wait until it accepts connections (bounded) -------------------------
deadline=$((SECONDS + READY_TIMEOUT_S))
until "${PG_BIN}/pg_isready" -q -h "$PG_HOST" -p "$PG_PORT"; do
    if [ "$SECONDS" -ge "$deadline" ]; then
        tail -n 30 "/var/log/postgresql/postgresql-${PG_VERSION}-${PG_CLUSTER}.log" >&2 || true
        die "PostgreSQL not ready on ${PG_HOST}:${PG_PORT} after ${READY_TIMEOUT_S}s"
    fi
    sleep 0.5
done
log "ready on ${PG_HOST}:${PG_PORT}"

# --- 5. role and database ----------------------------------------------------
# As the postgres superuser over the Unix socket (peer authentication).
psql_admin() {
    runuser -u postgres -- "${PG_BIN}/psql" -X -q -v ON_ERROR_STOP=1 \
        -h /var/run/postgresql -p "$PG_PORT" -d postgres "$@"
}
# CREATEDB: the test fixture creates (and drops) one database per test.
psql_admin >&2 <<SQL
DO \$\$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '${PG_USER}') THEN
        CREATE ROLE ${PG_USER} LOGIN CREATEDB PASSWORD '${PG_PASSWORD}';
    ELSE
        ALTER ROLE ${PG_USER} LOGIN CREATEDB PASSWORD '${PG_PASSWORD}';
    END IF;
END
\$\$;
-- DROP DATABASE ... WITH (FORCE) in the test fixture must also end an autovacuum
-- worker that happens to be on the test's database; that takes pg_signal_backend.
GRANT pg_signal_backend TO ${PG_USER};
-- The test database must be UTF8 (an older non-UTF8 one holds only test data:
-- recreate it).
SELECT 'DROP DATABASE ${PG_DB} WITH (FORCE)' FROM pg_database
WHERE datname = '${PG_DB}' AND pg_encoding_to_char(encoding) <> 'UTF8' \gexec
SELECT 'CREATE DATABASE ${PG_DB} OWNER ${PG_USER} TEMPLATE template0 ENCODING ''UTF8'' LOCALE ''C.UTF-8'''
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '${PG_DB}') \gexec
SQL

# Per-test databases left behind by an interrupted run (the fixture names them
# <db>_t_<hex>). Best effort: one still in use by a live run is left alone.
leftovers="$(psql_admin -At -c "SELECT datname FROM pg_database WHERE datname LIKE '${PG_DB}\_t\_%'")"
for d in $leftovers; do
    psql_admin -c "DROP DATABASE IF EXISTS \"${d}\"" >/dev/null 2>&1 && log "dropped leftover database ${d}" || true
done

# --- 6. check the test URL really works: TCP + password, as the test role ----
PGPASSWORD="$PG_PASSWORD" "${PG_BIN}/psql" -X -q -At -v ON_ERROR_STOP=1 \
    -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -d "$PG_DB" \
    -c "SELECT 1" >/dev/null \
    || die "cannot connect as ${PG_USER} to ${PG_DB} on ${PG_HOST}:${PG_PORT}"
listen="$(psql_admin -At -c 'SHOW listen_addresses')"
[ "$listen" = "$PG_HOST" ] || die "listen_addresses is '${listen}', expected '${PG_HOST}'"
log "role '${PG_USER}' and database '${PG_DB}' ready"

echo "postgresql+psycopg://${PG_USER}:${PG_PASSWORD}@${PG_HOST}:${PG_PORT}/${PG_DB}"
