#!/usr/bin/env bash
# Developer entry point for the hub workspace.
#
#   ./scripts/dev.sh run [ARGS...]    PostgreSQL + NATS, then `hub serve ARGS...`
#   ./scripts/dev.sh test [ARGS...]   PostgreSQL + NATS (+ Chromium for the console's browser
#                                     tests), then fmt, clippy, `cargo test ARGS...`,
#                                     schemathesis on the REST API, the fuzz targets briefly,
#                                     hub-bench --quick
#   ./scripts/dev.sh stop             stop the private PostgreSQL and NATS started here
#   ./scripts/dev.sh services         start (or reuse) the services and print their URLs
#
# Tools: `run` and `test` first check what they need and install what is
# missing with apt-get (--no-install-recommends), the C linker `cc` before
# anything else: it is what every Rust build needs. `cargo` itself must be
# there (https://rustup.rs).
#
# Services: when DATABASE_URL / NATS_URL are set they are used as given.
# Otherwise this script runs PRIVATE instances for this checkout (data under
# .data/, ports 31543 and 31422), installing Debian's `postgresql` and
# `nats-server` packages first if they are missing. Private instances keep
# running between invocations and are reused; `stop` ends them. With CI=true,
# `test` stops the instances it started itself when it exits.
#
# Environment knobs (all optional):
#   HUB_DEV_PG_PORT             private PostgreSQL port        (default 31543)
#   HUB_DEV_NATS_PORT           private NATS client port       (default 31422)
#   HUB_DEV_NATS_MONITOR_PORT   private NATS monitoring port   (default 31822)
#   HUB_DEV_WAIT_SECS           readiness deadline in seconds  (default 30)
#   HUB_DEV_STOP_AFTER          1: `test` stops what it started (default: 1 when CI=true)
#   HUB_FUZZ_SECONDS            seconds per fuzz target in `test` (default 15; 0 skips)
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
DATA_ROOT="$REPO_ROOT/.data"

# Below the kernel's ephemeral range (32768-60999): a client socket that
# happens to use the same local port would stop the server from listening.
PG_PORT="${HUB_DEV_PG_PORT:-31543}"
NATS_PORT="${HUB_DEV_NATS_PORT:-31422}"
NATS_MONITOR_PORT="${HUB_DEV_NATS_MONITOR_PORT:-31822}"
WAIT_SECS="${HUB_DEV_WAIT_SECS:-30}"

NATS_DIR="$DATA_ROOT/nats"
NATS_LOG="$DATA_ROOT/nats.log"
NATS_PID="$DATA_ROOT/nats.pid"

# The cargo-fuzz the test command installs when it is missing.
CARGO_FUZZ_VERSION=0.13.2
# The schemathesis (PyPI) the test command installs into .data/ when missing.
SCHEMATHESIS_VERSION=4.32.5

# Set by ensure_* when this invocation started a private instance.
STARTED_PG=0
STARTED_NATS=0
APT_UPDATED=0
# The steps of `test` that failed, reported at the end.
FAILED_STEPS=()

log() { printf '[dev.sh] %s\n' "$*" >&2; }
die() {
    printf '[dev.sh] error: %s\n' "$*" >&2
    exit 1
}

is_root() { [[ "$(id -u)" -eq 0 ]]; }

# Hide the password of a URL before printing it.
redact_url() { sed -E 's#(://[^:/@]+):[^@/]*@#\1:***@#' <<<"$1"; }

# ---------------------------------------------------------------------------
# Packages
# ---------------------------------------------------------------------------

apt_install() {
    local sudo=()
    if ! is_root; then
        command -v sudo >/dev/null 2>&1 ||
            die "need to install Debian package(s) '$*' but not root and no sudo: install them and retry"
        sudo=(sudo)
    fi
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found: install '$*' by hand and retry"
    log "installing Debian package(s): $*"
    if [[ "$APT_UPDATED" -eq 0 ]]; then
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
        APT_UPDATED=1
    fi
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@"
}

# ---------------------------------------------------------------------------
# Tools (checked before anything is installed, started or built)
# ---------------------------------------------------------------------------

# cc_links: the C compiler named `cc` links a program against the C library
# (gcc without libc6-dev has no crt1.o, and rustc's link step fails late).
cc_links() {
    command -v cc >/dev/null 2>&1 || return 1
    local dir status=0
    dir="$(mktemp -d)"
    printf 'int main(void) { return 0; }\n' >"$dir/probe.c"
    cc "$dir/probe.c" -o "$dir/probe" >/dev/null 2>&1 || status=1
    rm -rf "$dir"
    return "$status"
}

# ensure_tools [test]: what `run` needs (cargo, a C linker, TLS roots for
# cargo's downloads, and curl for the README's examples); with `test`, also
# what the test command needs later (a C++ compiler for libFuzzer, Python's
# venv for schemathesis), so a missing tool stops nothing half-way.
ensure_tools() {
    command -v cargo >/dev/null 2>&1 ||
        die "cargo not found: install the Rust toolchain (https://rustup.rs) and retry"
    cc_links || apt_install gcc libc6-dev
    cc_links || die "the C compiler 'cc' still cannot link a program after installing gcc and libc6-dev"
    local missing=()
    [[ -f /etc/ssl/certs/ca-certificates.crt ]] || missing+=(ca-certificates)
    command -v curl >/dev/null 2>&1 || missing+=(curl)
    if [[ "${1:-}" == test ]]; then
        if [[ "${HUB_FUZZ_SECONDS:-15}" != 0 ]]; then
            command -v c++ >/dev/null 2>&1 || missing+=(g++)
        fi
        if [[ ! -x "$DATA_ROOT/schemathesis-$SCHEMATHESIS_VERSION/bin/st" ]]; then
            command -v python3 >/dev/null 2>&1 || missing+=(python3)
            # ensurepip is what `python3 -m venv` needs (python3-venv).
            python3 -c 'import ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
        fi
    fi
    if [[ ${#missing[@]} -gt 0 ]]; then
        apt_install "${missing[@]}"
    fi
}

# The console's browser tests (tests/it/console_browser.rs) drive Debian's
# headless `chromium` through `chromedriver` (package `chromium-driver`).
ensure_browser() {
    command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 && return 0
    apt_install chromium chromium-driver
    command -v chromedriver >/dev/null 2>&1 || die "chromedriver not found after installing chromium-driver"
}

# ---------------------------------------------------------------------------
# Readiness helpers (poll a condition until a deadline, never a bare sleep)
# ---------------------------------------------------------------------------

# wait_until DESCRIPTION COMMAND...: retries COMMAND every 0.2 s for WAIT_SECS.
wait_until() {
    local what="$1"
    shift
    local deadline=$((SECONDS + WAIT_SECS))
    until "$@"; do
        if ((SECONDS >= deadline)); then
            log "gave up waiting for $what after ${WAIT_SECS}s"
            return 1
        fi
        sleep 0.2
    done
}

# tcp_open PORT: something accepts connections on 127.0.0.1:PORT.
tcp_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# nats_info PORT: prints the INFO line a NATS server sends on connect.
nats_info() {
    local line=""
    {
        exec 3<>"/dev/tcp/127.0.0.1/$1" || return 1
        IFS= read -r -t 2 line <&3 || true
        exec 3>&-
    } 2>/dev/null
    [[ "$line" == INFO* ]] || return 1
    printf '%s\n' "$line"
}

# ---------------------------------------------------------------------------
# PostgreSQL
# ---------------------------------------------------------------------------

PG_BIN=""
PG_DATA=""
PG_LOG=""

# Newest Debian PostgreSQL (/usr/lib/postgresql/N/bin), or the version that
# created an existing data dir.
find_pg_bin() {
    local want="${1:-}" dir
    if [[ -n "$want" ]]; then
        dir="/usr/lib/postgresql/$want/bin"
        [[ -x "$dir/pg_ctl" ]] && printf '%s\n' "$dir"
        return 0
    fi
    local newest=""
    for dir in /usr/lib/postgresql/*/bin; do
        [[ -x "$dir/pg_ctl" ]] && newest="$(printf '%s\n%s\n' "$newest" "$dir" | sort -V | tail -n 1)"
    done
    [[ -n "$newest" ]] && printf '%s\n' "$newest"
    return 0
}

# PostgreSQL refuses to run as root, so as root its tools run as `postgres`.
as_pg() {
    if is_root; then
        (cd / && runuser -u postgres -- "$@")
    else
        "$@"
    fi
}

# Chooses PG_DATA / PG_LOG: .data/postgres in the checkout, unless we are
# root and the postgres user cannot reach it (e.g. a checkout under /root).
resolve_pg_paths() {
    PG_DATA="$DATA_ROOT/postgres"
    PG_LOG="$DATA_ROOT/postgres.log"
    if is_root; then
        id postgres >/dev/null 2>&1 ||
            die "running as root but there is no 'postgres' OS user (Debian's postgresql package creates it)"
        [[ -d "$DATA_ROOT" ]] || mkdir -m 755 "$DATA_ROOT"
        if ! runuser -u postgres -- test -x "$DATA_ROOT" 2>/dev/null; then
            local hash
            hash="$(printf '%s' "$REPO_ROOT" | sha256sum | cut -c1-12)"
            local alt="/var/lib/hub-dev/$hash"
            PG_DATA="$alt/postgres"
            PG_LOG="$alt/postgres.log"
            if [[ "${1:-}" != quiet ]]; then
                log "the postgres user cannot traverse to $DATA_ROOT;"
                log "using $PG_DATA for the private cluster's data instead (log: $PG_LOG)"
            fi
        fi
    fi
}

pg_running() { as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1; }
pg_ready() { "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres; }

pg_init() {
    log "initialising a private PostgreSQL cluster in $PG_DATA"
    as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U postgres --auth=trust \
        --encoding=UTF8 --locale=C.UTF-8 >/dev/null
    # Private, loopback only; TCP only so the socket never collides with the
    # system cluster's; tests open many databases in parallel.
    as_pg tee -a "$PG_DATA/postgresql.conf" >/dev/null <<'EOF'

# --- hub dev cluster (scripts/dev.sh); the port is passed by pg_ctl ---
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
max_connections = 300
EOF
}

ensure_postgres() {
    if [[ -n "${DATABASE_URL:-}" ]]; then
        log "PostgreSQL: using DATABASE_URL from the environment: $(redact_url "$DATABASE_URL")"
        return 0
    fi

    # Debian's package also creates the `postgres` OS user (and its own
    # cluster on 5432, which is left alone).
    [[ -n "$(find_pg_bin)" ]] || apt_install postgresql
    [[ -n "$(find_pg_bin)" ]] ||
        die "PostgreSQL binaries not found under /usr/lib/postgresql/*/bin after installing"

    resolve_pg_paths

    # An existing cluster must be run by the version that created it.
    local existing=""
    [[ -f "$PG_DATA/PG_VERSION" ]] && existing="$(cat "$PG_DATA/PG_VERSION")"
    PG_BIN="$(find_pg_bin "$existing")"
    [[ -n "$PG_BIN" ]] ||
        die "$PG_DATA was created by PostgreSQL $existing, which is not installed; install postgresql-$existing, or remove the directory (./scripts/dev.sh stop; rm -rf $PG_DATA) to start afresh"

    if is_root; then
        if [[ "$PG_DATA" != "$DATA_ROOT/postgres" ]]; then
            [[ -d /var/lib/hub-dev ]] || mkdir -m 755 /var/lib/hub-dev
            mkdir -p "$(dirname "$PG_DATA")"
            chown postgres:postgres "$(dirname "$PG_DATA")"
        fi
        mkdir -p "$PG_DATA"
        chown postgres:postgres "$PG_DATA"
        touch "$PG_LOG"
        chown postgres:postgres "$PG_LOG"
    else
        mkdir -p "$PG_DATA"
    fi

    if [[ -z "$(ls -A "$PG_DATA")" ]]; then
        pg_init
    elif [[ ! -f "$PG_DATA/PG_VERSION" ]]; then
        die "$PG_DATA is not empty but holds no PostgreSQL cluster; move it away and retry"
    fi

    if pg_running; then
        if ! wait_until "the private PostgreSQL on port $PG_PORT" pg_ready; then
            die "a private cluster is running from $PG_DATA but does not answer on 127.0.0.1:$PG_PORT (another HUB_DEV_PG_PORT?); run ./scripts/dev.sh stop and retry"
        fi
        log "PostgreSQL: reusing the private cluster on 127.0.0.1:$PG_PORT ($PG_DATA)"
    else
        if tcp_open "$PG_PORT"; then
            # Most likely another checkout's private cluster: as good as ours
            # (every test makes its own database), and not ours to stop.
            if pg_ready && PGCONNECT_TIMEOUT=5 "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" \
                -U postgres -d postgres -Atqc 'SELECT 1' >/dev/null 2>&1; then
                log "PostgreSQL: port $PG_PORT already serves a PostgreSQL that takes user postgres (another checkout's cluster?): using it"
                export DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
                return 0
            fi
            die "port $PG_PORT is taken by something else; set HUB_DEV_PG_PORT or stop it"
        fi
        log "PostgreSQL: starting the private cluster on 127.0.0.1:$PG_PORT (log: $PG_LOG)"
        if ! as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t "$WAIT_SECS" \
            -o "-p $PG_PORT" start >/dev/null; then
            tail -n 20 "$PG_LOG" >&2 || true
            die "the private PostgreSQL did not start; see $PG_LOG"
        fi
        STARTED_PG=1
        wait_until "the private PostgreSQL on port $PG_PORT" pg_ready ||
            die "the private PostgreSQL does not answer on 127.0.0.1:$PG_PORT; see $PG_LOG"
    fi
    export DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
}

stop_postgres() {
    resolve_pg_paths quiet
    local existing=""
    [[ -f "$PG_DATA/PG_VERSION" ]] || {
        log "PostgreSQL: no private cluster at $PG_DATA"
        return 0
    }
    existing="$(cat "$PG_DATA/PG_VERSION")"
    PG_BIN="$(find_pg_bin "$existing")"
    [[ -n "$PG_BIN" ]] || die "PostgreSQL $existing binaries not found; cannot stop $PG_DATA"
    if pg_running; then
        log "PostgreSQL: stopping the private cluster ($PG_DATA)"
        as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t "$WAIT_SECS" stop >/dev/null
    else
        log "PostgreSQL: the private cluster is not running"
    fi
}

# ---------------------------------------------------------------------------
# NATS
# ---------------------------------------------------------------------------

find_nats() {
    local candidate
    for candidate in "$(command -v nats-server 2>/dev/null || true)" /usr/sbin/nats-server /usr/bin/nats-server; do
        [[ -n "$candidate" && -x "$candidate" ]] && {
            printf '%s\n' "$candidate"
            return 0
        }
    done
    return 0
}

# PID from our pid file, if that process is still a nats-server.
nats_pid() {
    [[ -f "$NATS_PID" ]] || return 1
    local pid
    pid="$(tr -dc '0-9' <"$NATS_PID")"
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null &&
        [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == nats-server* ]] || return 1
    printf '%s\n' "$pid"
}

nats_jetstream_ready() {
    local info
    info="$(nats_info "$NATS_PORT")" && [[ "$info" == *'"jetstream":true'* ]]
}

ensure_nats() {
    if [[ -n "${NATS_URL:-}" ]]; then
        log "NATS: using NATS_URL from the environment: $(redact_url "$NATS_URL")"
        return 0
    fi

    if tcp_open "$NATS_PORT"; then
        nats_jetstream_ready ||
            die "port $NATS_PORT is taken by something that is not NATS with JetStream; set HUB_DEV_NATS_PORT"
        log "NATS: reusing the server on 127.0.0.1:$NATS_PORT"
    else
        local bin
        bin="$(find_nats)"
        if [[ -z "$bin" ]]; then
            apt_install nats-server
            bin="$(find_nats)"
            [[ -n "$bin" ]] || die "nats-server not found after installing"
        fi
        mkdir -p "$NATS_DIR"
        log "NATS: starting a private server with JetStream on 127.0.0.1:$NATS_PORT (log: $NATS_LOG)"
        # Detached (own session, no inherited stdio) so it outlives this
        # script and never holds a caller's pipe open.
        setsid "$bin" -js -a 127.0.0.1 -p "$NATS_PORT" -sd "$NATS_DIR" \
            -m "$NATS_MONITOR_PORT" -P "$NATS_PID" \
            </dev/null >>"$NATS_LOG" 2>&1 &
        local launched=$!
        STARTED_NATS=1
        nats_up() {
            kill -0 "$launched" 2>/dev/null || return 0 # died: stop waiting
            nats_jetstream_ready
        }
        if ! wait_until "the private NATS on port $NATS_PORT" nats_up || ! nats_jetstream_ready; then
            tail -n 20 "$NATS_LOG" >&2 || true
            die "the private NATS did not come up; see $NATS_LOG"
        fi
    fi
    export NATS_URL="nats://127.0.0.1:$NATS_PORT"
}

stop_nats() {
    local pid
    if pid="$(nats_pid)"; then
        log "NATS: stopping the private server (pid $pid)"
        kill "$pid"
        nats_gone() { ! kill -0 "$pid" 2>/dev/null; }
        wait_until "NATS (pid $pid) to exit" nats_gone || {
            log "NATS did not exit in time; sending SIGKILL"
            kill -9 "$pid" 2>/dev/null || true
        }
        rm -f "$NATS_PID"
    else
        log "NATS: no private server running from $NATS_DIR"
        rm -f "$NATS_PID"
    fi
}

# ---------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------

ensure_services() {
    ensure_postgres
    ensure_nats
    log "services in use:"
    log "  DATABASE_URL=$(redact_url "$DATABASE_URL")"
    log "  NATS_URL=$(redact_url "$NATS_URL")"
}

# With CI=true (or HUB_DEV_STOP_AFTER=1), stop what this invocation started.
stop_started() {
    if [[ "$STARTED_NATS" -eq 1 ]]; then stop_nats || true; fi
    if [[ "$STARTED_PG" -eq 1 ]]; then stop_postgres || true; fi
}

cmd_run() {
    ensure_tools
    ensure_services
    cd "$REPO_ROOT"
    log "cargo run --release -p api --bin hub -- serve $*"
    exec cargo run --release -p api --bin hub -- serve "$@"
}

cmd_test() {
    local stop_after="${HUB_DEV_STOP_AFTER:-}"
    if [[ -z "$stop_after" ]]; then
        [[ "${CI:-}" == true || "${CI:-}" == 1 ]] && stop_after=1 || stop_after=0
    fi
    [[ "$stop_after" == 1 ]] && trap stop_started EXIT

    ensure_tools test
    ensure_browser
    ensure_services
    cd "$REPO_ROOT"
    step "cargo fmt --check (workspace and fuzz/)" check_format
    step "cargo clippy --workspace --all-targets -- -D warnings" \
        cargo clippy --workspace --all-targets -- -D warnings
    # --no-fail-fast: one failing test binary must not hide the others.
    step "cargo test --workspace --no-fail-fast $*" cargo test --workspace --no-fail-fast "$@"
    step "schemathesis on the REST API (tests/it/schemathesis.rs)" run_schemathesis
    step "the fuzz targets" run_fuzzers
    # The benchmark harness in quick mode: proves it still runs and produces
    # numbers (it asserts no speed).
    step "hub-bench --quick" run_bench
    if [[ ${#FAILED_STEPS[@]} -gt 0 ]]; then
        log "failed steps:"
        printf '[dev.sh]   %s\n' "${FAILED_STEPS[@]}" >&2
        exit 1
    fi
    log "every step passed"
}

# step NAME COMMAND...: one step of `test`. A failure is recorded and the
# later steps still run, so one failure never hides the others.
step() {
    local name="$1"
    shift
    log "$name"
    if ! "$@"; then
        log "FAILED: $name"
        FAILED_STEPS+=("$name")
    fi
}

# Steps run under `if`, where bash ignores `set -e`: each checks its
# commands itself.
check_format() {
    cargo fmt --all -- --check || return 1
    cargo fmt --manifest-path fuzz/Cargo.toml -- --check
}

# schemathesis fuzzes the REST API from its own /openapi.json, against hubs
# started by tests/it/schemathesis.rs (ignored in a plain `cargo test`).
run_schemathesis() {
    local venv="$DATA_ROOT/schemathesis-$SCHEMATHESIS_VERSION"
    if [[ ! -x "$venv/bin/st" ]]; then
        log "installing schemathesis $SCHEMATHESIS_VERSION (PyPI) into $venv"
        rm -rf "$venv"
        python3 -m venv "$venv" || return 1
        "$venv/bin/pip" install --quiet --disable-pip-version-check \
            "schemathesis==$SCHEMATHESIS_VERSION" || return 1
    fi
    SCHEMATHESIS="$venv/bin/st" cargo test -p hub-tests --test it schemathesis:: -- --ignored
}

# The parsers of untrusted text (names and slugs, subject patterns and
# filters, event subjects, GraphQL documents and variables through the
# schema's door), each fuzzed for HUB_FUZZ_SECONDS (default 15;
# 0 skips). `--sanitizer none` builds on the stable toolchain; the targets
# check invariants and panics, which need no sanitizer in safe Rust.
# libFuzzer itself is C++ (ensure_tools installed g++).
run_fuzzers() {
    local seconds="${HUB_FUZZ_SECONDS:-15}" target status=0
    [[ "$seconds" == 0 ]] && return 0
    if ! cargo fuzz --version >/dev/null 2>&1; then
        log "installing cargo-fuzz $CARGO_FUZZ_VERSION"
        cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked || return 1
    fi
    log "cargo clippy (fuzz/) -- -D warnings"
    cargo clippy --manifest-path "$REPO_ROOT/fuzz/Cargo.toml" --all-targets -- -D warnings ||
        status=1
    for target in project_name subject_pattern event_subject graphql_door; do
        log "cargo fuzz run $target (${seconds} s)"
        # libFuzzer reports every new coverage point; the end of its output
        # (stats, or the panic and the saved crash input) is what matters.
        (cd "$REPO_ROOT/fuzz" && cargo fuzz run --sanitizer none --release "$target" -- \
            -max_total_time="$seconds" 2>&1 | tail -n 40) || {
            log "FAILED: cargo fuzz run $target"
            status=1
        }
    done
    return "$status"
}

run_bench() {
    cargo build -p api --bin hub -p bench --bin hub-bench || return 1
    ./target/debug/hub-bench --quick
}

cmd_services() {
    ensure_services
    printf 'export DATABASE_URL=%q\n' "$DATABASE_URL"
    printf 'export NATS_URL=%q\n' "$NATS_URL"
}

cmd_stop() {
    stop_nats
    stop_postgres
}

usage() {
    sed -n '2,8p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

main() {
    local cmd="${1:-}"
    [[ $# -gt 0 ]] && shift
    case "$cmd" in
    run) cmd_run "$@" ;;
    test) cmd_test "$@" ;;
    stop) cmd_stop ;;
    services) cmd_services ;;
    -h | --help | help) usage ;;
    *)
        usage >&2
        exit 2
        ;;
    esac
}

main "$@"
