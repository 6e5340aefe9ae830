#!/usr/bin/env bash
# Set up everything the test suite needs and run it -- the one command for newcomers and CI.
#
#   bash scripts/test.sh                      # whole suite
#   bash scripts/test.sh tests/test_x.py -k y # any pytest arguments
#
# Works on a fresh Debian machine with Python >= 3.11, as root (CI) or as a normal user.
# Tests start their own services (PostgreSQL, Synapse, ...) on 127.0.0.1: no Docker, no
# system services.  Only the *binaries* of such services are installed here.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }
is_root() { [ "$(id -u)" -eq 0 ]; }

APT_UPDATED=0
apt_install() {
  is_root || die "missing system packages: $*. Install them (sudo apt-get install $*) or run as root."
  if [ "$APT_UPDATED" = 0 ]; then
    log "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    APT_UPDATED=1
  fi
  log "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# --------------------------------------------------------------------------- system services
# PostgreSQL server binaries.  tests/infra/postgres.py runs a throwaway cluster from
# /usr/lib/postgresql/*/bin (or $PG_BIN_DIR); as root it runs it as the `postgres` user.
have_pg_server() {
  compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null \
    || { [ -n "${PG_BIN_DIR:-}" ] && [ -x "$PG_BIN_DIR/initdb" ]; } \
    || command -v initdb >/dev/null
}
if ! have_pg_server; then
  apt_install postgresql
fi
if is_root && ! id -u postgres >/dev/null 2>&1; then
  # PostgreSQL refuses to run as root; the tests run the server as this unprivileged user.
  log "creating system user postgres"
  useradd --system --user-group --no-create-home --shell /usr/sbin/nologin postgres
fi

# IMAP server binaries (dovecot).  tests/infra/dovecot/ runs a throwaway dovecot master on
# 127.0.0.1 with its own config in a temporary directory (never /etc/dovecot, no system service).
# The Debian package also creates the `dovecot`/`dovenull` users it needs when run as root.
have_dovecot() {
  command -v dovecot >/dev/null || [ -x /usr/sbin/dovecot ] \
    || { [ -n "${DOVECOT_BIN:-}" ] && [ -x "$DOVECOT_BIN" ]; }
}
if ! have_dovecot; then
  apt_install dovecot-imapd
fi

# --------------------------------------------------------------------------- Python venv
PYTHON=${PYTHON:-python3}
VENV="$ROOT/.venv"
if [ ! -x "$VENV/bin/python" ]; then
  command -v "$PYTHON" >/dev/null || die "$PYTHON not found; install Python >= 3.11"
  "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || die "$PYTHON is $("$PYTHON" --version 2>&1); the project needs Python >= 3.11"
  log "creating .venv with $("$PYTHON" --version 2>&1)"
  if ! "$PYTHON" -m venv "$VENV"; then
    # Debian's python3 needs python3-venv for ensurepip.
    rm -rf "$VENV"
    apt_install python3-venv
    "$PYTHON" -m venv "$VENV"
  fi
fi
PY="$VENV/bin/python"

# Reinstall only when pyproject.toml changed or something is missing (pip -e is slow-ish).
STAMP="$VENV/.test-deps.sha256"
WANT=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ "$(cat "$STAMP" 2>/dev/null || true)" != "$WANT" ] \
  || ! "$PY" -c 'import bridge, synapse, nio, pytest, pytest_asyncio, xdist, asyncpg, psycopg2, psutil, importlinter, olm, base58, vodozemac' 2>/dev/null; then
  log "pip install -e '.[test]'"
  "$PY" -m pip install -q --disable-pip-version-check -e '.[test]'
  echo "$WANT" >"$STAMP"
fi

# --------------------------------------------------------------------------- run
PYTEST_ARGS=()
if [ "$#" -eq 0 ]; then
  # The whole suite also holds the code to its style and types.
  log "ruff check, ruff format --check, mypy, lint-imports"
  "$VENV/bin/ruff" check bridge tests demo
  "$VENV/bin/ruff" format --check bridge tests demo
  "$VENV/bin/mypy" bridge
  # The layering (pyproject.toml, [tool.importlinter]): fails on an import against it.
  "$VENV/bin/lint-imports"
  # Most of the suite waits on subprocesses (Synapse, the bridge, PostgreSQL): one worker per
  # core (TEST_WORKERS overrides), each taking whole test files, so that a module's stack is
  # started once, in one worker.  Session fixtures (PostgreSQL, the shared stack) start once
  # per worker, on free ports and in the worker's own temporary directory.
  PYTEST_ARGS=(-n "${TEST_WORKERS:-$(nproc)}" --dist loadfile)
fi
log "pytest ${PYTEST_ARGS[*]} $*"
set +e
"$PY" -m pytest -q "${PYTEST_ARGS[@]}" "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  die "pytest collected no tests (exit code 5); treating that as a failure"
fi
exit "$rc"
