#!/usr/bin/env bash
# Set up what the benchmark needs and run it: python -m bench (see "Benchmark" in README.md).
#
#   bash scripts/bench.sh                  # full run, table on stdout, bench-results.json
#   bash scripts/bench.sh --quick          # tiny sizes (a minute): does it all work?
#   bash scripts/bench.sh --repeat 5 --json /tmp/bench.json   # any python -m bench options
#
# Works on a fresh Debian machine with Python >= 3.11, as root or as a normal user. The
# benchmark starts its own PostgreSQL and Synapse on 127.0.0.1; only the PostgreSQL server
# binaries are installed here (as root), as scripts/test.sh does.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }
is_root() { [ "$(id -u)" -eq 0 ]; }

# --------------------------------------------------------------------------- PostgreSQL
have_pg_server() {
  compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null \
    || { [ -n "${PG_BIN_DIR:-}" ] && [ -x "$PG_BIN_DIR/initdb" ]; } \
    || command -v initdb >/dev/null
}
if ! have_pg_server; then
  is_root || die "PostgreSQL server binaries are missing: sudo apt-get install postgresql (or run as root)"
  log "apt-get install postgresql"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null
fi
if is_root && ! id -u postgres >/dev/null 2>&1; then
  # PostgreSQL refuses to run as root; the benchmark runs the server as this unprivileged user.
  log "creating system user postgres"
  useradd --system --user-group --no-create-home --shell /usr/sbin/nologin postgres
fi

# --------------------------------------------------------------------------- Python venv
PYTHON=${PYTHON:-python3}
VENV="$ROOT/.venv"
if [ ! -x "$VENV/bin/python" ]; then
  command -v "$PYTHON" >/dev/null || die "$PYTHON not found; install Python >= 3.11"
  "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || die "$PYTHON is $("$PYTHON" --version 2>&1); the project needs Python >= 3.11"
  log "creating .venv with $("$PYTHON" --version 2>&1)"
  "$PYTHON" -m venv "$VENV" || die "could not create .venv (Debian: apt-get install python3-venv)"
fi
PY="$VENV/bin/python"

# The test extra brings Synapse; the bench extra psycopg2 (Synapse on PostgreSQL), psutil
# and py-spy (--profile).
STAMP="$VENV/.bench-deps.sha256"
WANT=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ "$(cat "$STAMP" 2>/dev/null || true)" != "$WANT" ] \
  || ! "$PY" -c 'import bridge, synapse, psycopg2, psutil, asyncpg' 2>/dev/null; then
  log "pip install -e '.[test,bench]'"
  "$PY" -m pip install -q --disable-pip-version-check -e '.[test,bench]'
  echo "$WANT" >"$STAMP"
fi

# --------------------------------------------------------------------------- run
exec "$PY" -m bench "$@"
