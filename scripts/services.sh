#!/usr/bin/env bash
# Make sure the services the test suite needs are up, on a fresh Debian machine or a dev box:
# PostgreSQL on 127.0.0.1:5432 with a `test` database reachable as `postgres` without a
# password, Redis on 127.0.0.1:6379, `promtool` (from Debian's `prometheus` package) and
# /usr/bin/chromium (Debian's `chromium`, for the dashboard's Playwright tests) and
# /usr/sbin/dovecot (Debian's `dovecot-imapd`, for the inbound mail tests).
# Idempotent: when everything is already there it changes nothing.
set -euo pipefail

PG_HOST=127.0.0.1
PG_PORT=5432
REDIS_HOST=127.0.0.1
REDIS_PORT=6379

log() { printf 'services: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "not root and no sudo: cannot install or start services"
    SUDO=(sudo -n)
fi

APT_UPDATED=0
apt_install() {
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install $* yourself"
    log "installing $*"
    if [ "$APT_UPDATED" -eq 0 ]; then
        "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        APT_UPDATED=1
    fi
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "$@" </dev/null
}

wait_for() {  # wait_for DESCRIPTION COMMAND...: up to 30 s
    local what=$1 i
    shift
    for i in $(seq 1 60); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.5
    done
    die "$what did not come up within 30 s"
}

pg_ready() { pg_isready -q -h "$PG_HOST" -p "$PG_PORT"; }
pg_sql() {  # pg_sql DATABASE SQL: over TCP as postgres
    psql -X -q -t -A -v ON_ERROR_STOP=1 -h "$PG_HOST" -p "$PG_PORT" -U postgres -d "$1" -c "$2"
}
pg_sql_local() {  # same, as the postgres OS user over the Unix socket (peer auth)
    "${SUDO[@]}" su postgres -c "psql -X -q -t -A -v ON_ERROR_STOP=1 -p $PG_PORT -d $1 -c \"$2\""
}
newest_cluster() { ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1; }

start_postgres() {
    if [ -z "$(newest_cluster)" ] && ! command -v pg_ctlcluster >/dev/null 2>&1; then
        # The Debian package creates the `main` cluster; policy-rc.d may stop it from starting.
        apt_install postgresql redis-server
    fi
    local version
    version=$(newest_cluster)
    if [ -z "$version" ] || [ ! -d "/etc/postgresql/$version/main" ]; then
        version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
        [ -n "$version" ] || die "PostgreSQL binaries not found after install"
        log "creating cluster $version/main"
        "${SUDO[@]}" pg_createcluster "$version" main
    fi
    if ! "${SUDO[@]}" pg_ctlcluster "$version" main status >/dev/null 2>&1; then
        log "starting PostgreSQL cluster $version/main"
        "${SUDO[@]}" pg_ctlcluster --skip-systemctl-redirect "$version" main start
    fi
    wait_for "PostgreSQL" pg_ready
}

ensure_trust_over_tcp() {
    # The tests connect as postgres over TCP without a password. Debian's default is
    # scram-sha-256 on 127.0.0.1, so on a fresh machine we trust postgres from loopback only.
    if pg_sql postgres 'select 1' </dev/null >/dev/null 2>&1; then return 0; fi
    local version hba
    version=$(newest_cluster)
    hba=/etc/postgresql/$version/main/pg_hba.conf
    [ -f "$hba" ] || die "cannot connect as postgres to $PG_HOST:$PG_PORT and no $hba to fix"
    log "allowing postgres from 127.0.0.1 without a password in $hba"
    "${SUDO[@]}" sed -i '1i host all postgres 127.0.0.1/32 trust  # added by scripts/services.sh' "$hba"
    "${SUDO[@]}" pg_ctlcluster --skip-systemctl-redirect "$version" main reload
    wait_for "PostgreSQL trust auth" pg_sql postgres 'select 1'
}

ensure_postgres() {
    if ! command -v pg_isready >/dev/null 2>&1 || ! pg_ready; then
        start_postgres
    fi
    ensure_trust_over_tcp
    if [ "$(pg_sql postgres "select 1 from pg_database where datname = 'test'")" != 1 ]; then
        log "creating database test"
        pg_sql postgres 'create database test' || pg_sql_local postgres 'create database test'
    fi
    pg_sql test 'select 1' >/dev/null || die "database test is not reachable as postgres over TCP"
}

redis_ready() { redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" ping | grep -q PONG; }

ensure_redis() {
    if command -v redis-cli >/dev/null 2>&1 && redis_ready 2>/dev/null; then return 0; fi
    if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
        apt_install redis-server
    fi
    log "starting Redis on $REDIS_HOST:$REDIS_PORT"
    redis-server --daemonize yes --bind "$REDIS_HOST" --port "$REDIS_PORT" \
        --save "" --appendonly no
    wait_for "Redis" redis_ready
}

ensure_promtool() {
    command -v promtool >/dev/null 2>&1 || apt_install prometheus
    command -v promtool >/dev/null 2>&1 || die "promtool still missing after installing prometheus"
}

# The dashboard tests drive Debian's Chromium (never a browser downloaded by Playwright).
ensure_chromium() {
    [ -x /usr/bin/chromium ] || apt_install chromium
    [ -x /usr/bin/chromium ] || die "/usr/bin/chromium still missing after installing chromium"
}

# The inbound mail tests start a throwaway Dovecot IMAP server of their own (tests/inbound).
ensure_dovecot() {
    [ -x /usr/sbin/dovecot ] || apt_install dovecot-imapd
    [ -x /usr/sbin/dovecot ] || die "/usr/sbin/dovecot still missing after installing dovecot-imapd"
}

main() {
    ensure_postgres
    ensure_redis
    ensure_promtool
    ensure_chromium
    ensure_dovecot
    log "PostgreSQL, Redis, promtool, Chromium and Dovecot are ready"
}

# Sourcing the file only defines the functions (handy to try one step on its own).
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    main "$@"
fi
