#!/usr/bin/env bash
# A local demo of the bridge in one command: a throwaway Synapse, the bridge, a small
# "customer" web app on the far side of the webhook connector, a simulated Telegram (a local
# Bot API server with the company's bot and a page to write to it), a simulated WhatsApp (a
# local Cloud API with the company's business number and a page to write to it), a simulated VK
# (a local VK API with the company's community and a page to write to it), a simulated MAX (a
# local MAX Bot API with the company's bot and a page to write to it) and a support
# mailbox (a local Dovecot, an SMTP server that keeps the replies, a page to mail from), all on
# 127.0.0.1.
#
#   bash scripts/demo.sh           # start everything, print how to log in; Ctrl-C stops it
#   bash scripts/demo.sh --check   # start, drive a webhook, a Telegram, a WhatsApp, a VK, a
#                                  # MAX and an email conversation end to end, then the newsletter's
#                                  # opt-ins, broadcasts and an opt-out, print PASS/FAIL
#                                  # (or DEMO_CHECK=1 bash scripts/demo.sh)
#   DEMO_E2EE=1 bash scripts/demo.sh   # the same with end-to-bridge encryption: every new room
#                                  # encrypted; --check then logs in as an E2EE device
#
# Ports: DEMO_HS_PORT (Synapse, 8008), DEMO_BRIDGE_PORT (bridge, 29340),
#        DEMO_CUSTOMER_PORT (customer app, 8090), DEMO_TELEGRAM_PORT (Telegram, 8091),
#        DEMO_WHATSAPP_PORT (WhatsApp, 8092), DEMO_MAIL_PORT (email page, 8093),
#        DEMO_VK_PORT (VK, 8094), DEMO_MAX_PORT (MAX, 8095), DEMO_IMAP_PORT (Dovecot, 8143),
#        DEMO_SMTP_PORT (SMTP, 8025).
# Email needs Dovecot (dovecot-imapd), which is installed with apt when missing and root;
# otherwise the demo runs without email.
# Everything is kept in demo-data/ (config, databases, the staff password, logs) and reused by
# later runs; rm -rf demo-data to start afresh. A run without DEMO_E2EE=1 after one with it makes
# new rooms plain again and keeps the encrypted ones working.
#
# Works on a fresh Debian machine with Python >= 3.11: creates .venv and installs the project
# with its test extra (which brings Synapse and matrix-nio) the first time; DEMO_SKIP_INSTALL=1
# uses .venv as it is (as the test suite does: its venv is the one under test) and never installs.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
DATA="${DEMO_DATA:-$ROOT/demo-data}"
export DEMO_DATA="$DATA"

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }
is_root() { [ "$(id -u)" -eq 0 ]; }

CHECK=${DEMO_CHECK:-0}
[ "$CHECK" = 1 ] || CHECK=0
for arg in "$@"; do
  case "$arg" in
    --check) CHECK=1 ;;
    -h|--help) sed -n '2,30p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $arg (try --help)" ;;
  esac
done

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

# --------------------------------------------------------------------------- Python venv
# Same venv, same install and same stamp as scripts/test.sh, so either script reuses the other's.
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

STAMP="$VENV/.test-deps.sha256"
WANT=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ "${DEMO_SKIP_INSTALL:-0}" = 1 ]; then
  "$PY" -c 'import bridge, synapse, nio, aiohttp, ruamel.yaml' \
    || die "DEMO_SKIP_INSTALL=1, but .venv lacks what the demo needs"
elif [ "$(cat "$STAMP" 2>/dev/null || true)" != "$WANT" ] \
  || ! "$PY" -c 'import bridge, synapse, nio, pytest, pytest_asyncio, asyncpg, aiohttp, aiogram, ruamel.yaml, olm, base58' 2>/dev/null; then
  log "pip install -e '.[test]' (the first time this takes a few minutes)"
  "$PY" -m pip install -q --disable-pip-version-check -e '.[test]'
  echo "$WANT" >"$STAMP"
fi

# --------------------------------------------------------------------------- email
# Dovecot for the support mailbox: installed as scripts/test.sh does (the Debian package also
# creates the dovecot/dovenull users it needs as root). Without it the demo runs without email.
have_dovecot() {
  command -v dovecot >/dev/null || [ -x /usr/sbin/dovecot ] \
    || { [ -n "${DOVECOT_BIN:-}" ] && [ -x "$DOVECOT_BIN" ]; }
}
EMAIL=1
if ! have_dovecot; then
  if is_root; then
    apt_install dovecot-imapd || EMAIL=0
  else
    EMAIL=0
  fi
  if [ "$EMAIL" = 0 ]; then
    log "Dovecot is not installed (and could not be installed here): running the demo WITHOUT"
    log "the email customer. For email: sudo apt-get install dovecot-imapd, or run as root."
  fi
fi
export DEMO_EMAIL=$EMAIL

# --------------------------------------------------------------------------- processes
mkdir -p "$DATA"
export PYTHONUNBUFFERED=1

# An earlier run that was killed hard (kill -9, a crash) may have left its processes behind.
LEFTOVER=()
for pidfile in "$DATA"/*.pid; do
  [ -e "$pidfile" ] || continue
  pid=$(cat "$pidfile" 2>/dev/null || true)
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null \
    && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null \
      | grep -q -e 'synapse.app.homeserver' -e '-m bridge' -e 'scripts/demo.sh' \
        -e 'demo/customer.py' \
        -e 'demo/telegram_customer.py' -e 'demo/whatsapp_customer.py' -e 'demo/vk_customer.py' \
        -e 'demo/max_customer.py' \
        -e 'demo/email_customer.py' -e 'dovecot'; then
    LEFTOVER+=("$pid")
  else
    rm -f "$pidfile"
  fi
done
if [ "${#LEFTOVER[@]}" -gt 0 ]; then
  die "an earlier demo is still running (pids ${LEFTOVER[*]}). Stop it first: kill ${LEFTOVER[*]}"
fi

PIDS=()
NAMES=()
LOGS=()

# Children run in their own session (setsid), so that Ctrl-C reaches only this script, which
# then stops them in order; otherwise each would get the SIGINT and quit on its own.
SETSID=()
command -v setsid >/dev/null && SETSID=(setsid)

# start NAME OUT LOG DIR COMMAND...: run COMMAND in DIR in the background; its stdout is
# appended to OUT ("-": this terminal), its stderr to LOG.
start() {
  local name=$1 out=$2 logfile=$3 dir=$4
  shift 4
  if [ "$out" = - ]; then
    (cd "$dir" && exec "${SETSID[@]}" "$@") 2>>"$logfile" </dev/null &
  else
    (cd "$dir" && exec "${SETSID[@]}" "$@") >>"$out" 2>>"$logfile" </dev/null &
  fi
  remember "$name" "$!" "$logfile"
}
remember() {
  PIDS+=("$2")
  NAMES+=("$1")
  LOGS+=("$3")
  echo "$2" >"$DATA/$1.pid"
}

# start_simulator NAME TITLE PORT: a simulated channel and its customer page
# (demo/NAME_customer.py serve) on PORT, waited for. Its terminal output ("the bot answered
# ...") is part of the demo, but not of --check.
start_simulator() {
  local name=$1 title=$2 port=$3 out=- quiet=()
  log "starting the $title simulator on 127.0.0.1:$port (log: demo-data/$name.log)"
  if [ "$CHECK" = 1 ]; then
    out=/dev/null
    quiet=(--quiet)
  fi
  start "$name" "$out" "$DATA/$name.log" "$ROOT" \
    "$PY" "demo/${name}_customer.py" serve --log "$DATA/$name.log" "${quiet[@]}"
  "$PY" demo/setup.py wait "http://127.0.0.1:$port/api/messages" \
    --pid "${PIDS[-1]}" --what "The $title simulator" --log "$DATA/$name.log" --timeout 60
}

stop_pid() {  # SIGTERM, then SIGKILL after $2 seconds
  local pid=$1 grace=$2 waited=0
  kill -TERM "$pid" 2>/dev/null || return 0
  while kill -0 "$pid" 2>/dev/null && [ "$waited" -lt $((grace * 10)) ]; do
    sleep 0.1
    waited=$((waited + 1))
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "pid $pid did not stop in ${grace}s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  trap - EXIT INT TERM HUP
  if [ "${#PIDS[@]}" -gt 0 ]; then
    log "stopping the demo"
    # Reverse order: customer app, bridge, mail servers, MAX, VK, WhatsApp and Telegram
    # simulators, then Synapse.
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
      stop_pid "${PIDS[i]}" 20
      rm -f "$DATA/${NAMES[i]}.pid"
    done
    log "stopped; data kept in demo-data/ (rm -rf demo-data to start afresh)"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

log "preparing demo-data/"
"$PY" demo/setup.py prepare
read -r HS_PORT BRIDGE_PORT CUSTOMER_PORT TELEGRAM_PORT WHATSAPP_PORT MAIL_PORT VK_PORT MAX_PORT \
  ACCOUNT \
  < <("$PY" -c '
import json, sys
s = json.load(open(sys.argv[1]))
print(s["hs_port"], s["bridge_port"], s["customer_port"], s["telegram_port"],
      s["whatsapp_port"], s["mail_port"], s["vk_port"], s["max_port"], s["account"])
' "$DATA/demo.json")

log "starting Synapse on 127.0.0.1:$HS_PORT (log: demo-data/synapse.log)"
start synapse "$DATA/synapse-console.log" "$DATA/synapse-console.log" "$DATA/synapse" \
  "$PY" -m synapse.app.homeserver -c "$DATA/synapse/homeserver.yaml"
"$PY" demo/setup.py wait "http://127.0.0.1:$HS_PORT/_matrix/client/versions" \
  --pid "${PIDS[-1]}" --what Synapse --log "$DATA/synapse-console.log" --timeout 180
"$PY" demo/setup.py staff

# The simulated channels before the bridge, so that its accounts connect at once: Telegram,
# WhatsApp (it plays Meta, which verifies the bridge's webhook as soon as it answers), VK (it
# confirms the bridge's callback address as soon as the bridge answers) and MAX (the bridge
# subscribes its webhook there when it starts).
start_simulator telegram Telegram "$TELEGRAM_PORT"
start_simulator whatsapp WhatsApp "$WHATSAPP_PORT"
start_simulator vk VK "$VK_PORT"
start_simulator max MAX "$MAX_PORT"

# The mail servers too: the bridge's email account logs in to the mailbox when it starts.
if [ "$EMAIL" = 1 ]; then
  log "starting Dovecot, the SMTP server and the email page on 127.0.0.1:$MAIL_PORT" \
    "(log: demo-data/email.log)"
  if [ "$CHECK" = 1 ]; then
    start email /dev/null "$DATA/email.log" "$ROOT" \
      "$PY" demo/email_customer.py serve --log "$DATA/email.log" --quiet
  else
    # Its terminal output ("The company answered ...") is part of the demo.
    start email - "$DATA/email.log" "$ROOT" \
      "$PY" demo/email_customer.py serve --log "$DATA/email.log"
  fi
  "$PY" demo/setup.py wait "http://127.0.0.1:$MAIL_PORT/api/messages" \
    --pid "${PIDS[-1]}" --what "The email customer page" --log "$DATA/email.log" --timeout 60
fi

# The bridge runs under a small supervisor that starts it again whenever it stops (a crash, or
# `kill $(cat demo-data/bridge-process.pid)` to restart it after editing demo-data/config.yaml),
# so stopping the bridge alone does not end the demo. A bridge that stops within 10 s of its
# start three times in a row is given up on, and the demo stops with its log.
supervise_bridge() {
  local child="" stopping=0 started rc quick=0
  trap 'stopping=1; [ -z "$child" ] || kill -TERM "$child" 2>/dev/null' TERM
  while true; do
    started=$SECONDS
    # PYTHONPATH: this checkout's bridge, whichever checkout the venv's editable install names.
    (cd "$DATA" && PYTHONPATH="$ROOT" exec "${SETSID[@]}" "$PY" -m bridge -c config.yaml) \
      >>"$DATA/bridge.log" 2>&1 </dev/null &
    child=$!
    echo "$child" >"$DATA/bridge-process.pid"
    rc=0
    while kill -0 "$child" 2>/dev/null; do
      wait "$child" && rc=0 || rc=$?  # a trapped TERM interrupts wait: wait again
    done
    rm -f "$DATA/bridge-process.pid"
    [ "$stopping" = 0 ] || exit 0
    if [ $((SECONDS - started)) -lt 10 ]; then quick=$((quick + 1)); else quick=0; fi
    if [ "$quick" -ge 3 ]; then
      log "the bridge stopped right after starting three times in a row (exit $rc); giving up"
      exit 1
    fi
    log "the bridge stopped (exit $rc); starting it again (log: demo-data/bridge.log)"
    sleep 1
  done
}

log "starting the bridge on 127.0.0.1:$BRIDGE_PORT (log: demo-data/bridge.log)"
supervise_bridge </dev/null &
remember bridge "$!" "$DATA/bridge.log"
# The webhook route exists once the connector started: GET on it answers 405 from then on.
"$PY" demo/setup.py wait "http://127.0.0.1:$BRIDGE_PORT/connectors/$ACCOUNT/events" --status 405 \
  --pid "${PIDS[-1]}" --what "The bridge" --log "$DATA/bridge.log" --timeout 180
# The simulator answers 200 here once the bridge's Telegram account has reached the bot.
"$PY" demo/setup.py wait "http://127.0.0.1:$TELEGRAM_PORT/api/ready" \
  --pid "${PIDS[-1]}" --what "The bridge's Telegram account" --log "$DATA/bridge.log" --timeout 60
# ... and 200 here once it has verified the bridge's WhatsApp webhook (hub.challenge).
"$PY" demo/setup.py wait "http://127.0.0.1:$WHATSAPP_PORT/api/ready" \
  --pid "${PIDS[-1]}" --what "The bridge's WhatsApp webhook" --log "$DATA/bridge.log" --timeout 60
# ... and 200 here once the bridge has answered VK's confirmation request with the right code.
"$PY" demo/setup.py wait "http://127.0.0.1:$VK_PORT/api/ready" \
  --pid "${PIDS[-1]}" --what "The bridge's VK callback" --log "$DATA/bridge.log" --timeout 60
# ... and 200 here once the bridge has subscribed its MAX webhook (POST /subscriptions).
"$PY" demo/setup.py wait "http://127.0.0.1:$MAX_PORT/api/ready" \
  --pid "${PIDS[-1]}" --what "The bridge's MAX webhook" --log "$DATA/bridge.log" --timeout 60

log "starting the customer app on 127.0.0.1:$CUSTOMER_PORT (log: demo-data/customer.log)"
if [ "$CHECK" = 1 ]; then
  start customer /dev/null "$DATA/customer.log" "$ROOT" \
    "$PY" demo/customer.py serve --log "$DATA/customer.log" --quiet
else
  # Its terminal output ("Staff replied: ...") is part of the demo.
  start customer - "$DATA/customer.log" "$ROOT" "$PY" demo/customer.py serve --log "$DATA/customer.log"
fi
"$PY" demo/setup.py wait "http://127.0.0.1:$CUSTOMER_PORT/api/messages" \
  --pid "${PIDS[-1]}" --what "The customer app" --log "$DATA/customer.log" --timeout 60

if [ "$CHECK" = 1 ]; then
  set +e
  "$PY" demo/check.py
  rc=$?
  set -e
  exit "$rc"
fi

"$PY" demo/setup.py banner

# Run until Ctrl-C, or until one of them stops on its own.
while true; do
  set +e
  wait -n
  set -e
  for i in "${!PIDS[@]}"; do
    if ! kill -0 "${PIDS[i]}" 2>/dev/null; then
      log "${NAMES[i]} stopped unexpectedly; last lines of ${LOGS[i]}:"
      tail -n 30 "${LOGS[i]}" >&2 || true
      exit 1
    fi
  done
done
