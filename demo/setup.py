"""Sets up (first run) or refreshes (later runs) ``demo-data/`` for ``scripts/demo.sh``.

    python demo/setup.py prepare     # settings, Synapse config, bridge config, registration
    python demo/setup.py wait URL    # wait until URL answers (while a given pid lives)
    python demo/setup.py staff       # make sure @staff:localhost exists (Synapse running)
    python demo/setup.py banner      # print how to use the running demo

Ports come from DEMO_HS_PORT (8008), DEMO_BRIDGE_PORT (29340), DEMO_CUSTOMER_PORT (8090),
DEMO_TELEGRAM_PORT (8091), DEMO_WHATSAPP_PORT (8092), DEMO_MAIL_PORT (8093, the email page),
DEMO_IMAP_PORT (8143) and DEMO_SMTP_PORT (8025) on every run; secrets, the staff password, the
Telegram bot token, the WhatsApp app secret, verify token and access token and the support
mailbox's password are made once and kept in demo-data/demo.json. DEMO_EMAIL=0 (scripts/demo.sh
sets it when Dovecot is missing) leaves the email account out of the bridge config.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from common import (
    ACCOUNT,
    DATA,
    EMAIL_ACCOUNT,
    LOOPBACK,
    REPO,
    SERVER_NAME,
    STAFF_LOCALPART,
    STAFF_USER,
    TELEGRAM_ACCOUNT,
    TELEGRAM_BOT_USERNAME,
    WHATSAPP_ACCOUNT,
    WHATSAPP_DISPLAY_NUMBER,
    WHATSAPP_PHONE_NUMBER_ID,
    WHATSAPP_WABA_ID,
    bridge_url,
    customer_url,
    hs_url,
    load_state,
    save_state,
    telegram_url,
    whatsapp_url,
)
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap

SYNAPSE_DIR = DATA / "synapse"
BRIDGE_CONFIG = DATA / "config.yaml"
REGISTRATION = DATA / "registration.yaml"
EXAMPLE_CONFIG = REPO / "example-config.yaml"
DEFAULT_PORTS = {"hs_port": 8008, "bridge_port": 29340, "customer_port": 8090,
                 "telegram_port": 8091, "whatsapp_port": 8092, "mail_port": 8093,
                 "imap_port": 8143, "smtp_port": 8025}  # fmt: skip
PORT_ENV = {"hs_port": "DEMO_HS_PORT", "bridge_port": "DEMO_BRIDGE_PORT",
            "customer_port": "DEMO_CUSTOMER_PORT",
            "telegram_port": "DEMO_TELEGRAM_PORT",
            "whatsapp_port": "DEMO_WHATSAPP_PORT",
            "mail_port": "DEMO_MAIL_PORT",
            "imap_port": "DEMO_IMAP_PORT",
            "smtp_port": "DEMO_SMTP_PORT"}  # fmt: skip
PORT_WHAT = {"hs_port": "Synapse", "bridge_port": "the bridge",
             "customer_port": "the customer app",
             "telegram_port": "the Telegram simulator",
             "whatsapp_port": "the WhatsApp simulator",
             "mail_port": "the email customer page",
             "imap_port": "the demo's Dovecot (IMAP)",
             "smtp_port": "the demo's SMTP server"}  # fmt: skip

_FAST = {"per_second": 10000, "burst_count": 100000}
RELAXED_RATE_LIMITS: dict[str, Any] = {
    "rc_message": _FAST,
    "rc_registration": _FAST,
    "rc_registration_token_validity": _FAST,
    "rc_login": {"address": _FAST, "account": _FAST, "failed_attempts": _FAST},
    "rc_admin_redaction": _FAST,
    "rc_joins": {"local": _FAST, "remote": _FAST},
    "rc_joins_per_room": _FAST,
    "rc_3pid_validation": _FAST,
    "rc_invites": {"per_room": _FAST, "per_user": _FAST, "per_issuer": _FAST},
    "rc_third_party_invite": _FAST,
    "rc_media_create": _FAST,
    "rc_presence": {"per_user": _FAST},
    "rc_delayed_event_mgmt": _FAST,
    "rc_room_creation": _FAST,
    "rc_reports": _FAST,
    "rc_user_directory": _FAST,
    "rc_profile": _FAST,
    "rc_key_requests": _FAST,
}


def fail(message: str) -> None:
    print(f"ERROR: {message}", file=sys.stderr)
    raise SystemExit(1)


# --------------------------------------------------------------------------- prepare


def _ports() -> dict[str, int]:
    ports = {}
    for key, default in DEFAULT_PORTS.items():
        raw = os.environ.get(PORT_ENV[key]) or str(default)
        if not raw.isdigit() or not 0 < int(raw) < 65536:
            fail(f"{PORT_ENV[key]}={raw!r} is not a port number")
        ports[key] = int(raw)
    if len(set(ports.values())) != len(ports):
        fail(f"the demo needs {len(ports)} different ports, got {ports}")
    return ports


def _check_ports_free(ports: dict[str, int]) -> None:
    for key, port in ports.items():
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((LOOPBACK, port))
            except OSError:
                fail(
                    f"port {port} on {LOOPBACK} (for {PORT_WHAT[key]}) is already in use. "
                    f"Stop whatever uses it, or pick another port: {PORT_ENV[key]}=... "
                    "bash scripts/demo.sh"
                )


def _state(ports: dict[str, int]) -> dict[str, Any]:
    try:
        state = load_state() if (DATA / "demo.json").exists() else {}
    except (ValueError, OSError) as e:
        fail(f"{DATA / 'demo.json'} is unreadable ({e}); remove demo-data/ to start afresh")
    fresh = not state
    state.setdefault("staff_user", STAFF_USER)
    state.setdefault("staff_password", secrets.token_urlsafe(12))
    state.setdefault("webhook_secret", secrets.token_hex(32))
    state.setdefault("registration_shared_secret", secrets.token_hex(32))
    state.setdefault("macaroon_secret_key", secrets.token_hex(32))
    state.setdefault("form_secret", secrets.token_hex(32))
    state.setdefault("account", ACCOUNT)
    state.setdefault("telegram_account", TELEGRAM_ACCOUNT)
    # A bot token shaped like @BotFather's (<bot id>:<secret>); the simulator accepts only it.
    bot_id = 7_000_000_000 + secrets.randbelow(1_000_000_000)
    state.setdefault("telegram_token", f"{bot_id}:{secrets.token_urlsafe(26)}")
    state.setdefault("telegram_bot_username", TELEGRAM_BOT_USERNAME)
    # The WhatsApp business number: what Meta's dashboard would show (ids, a system-user access
    # token, the app secret that signs webhooks) and the verify token typed in there.
    state.setdefault("whatsapp_account", WHATSAPP_ACCOUNT)
    state.setdefault("whatsapp_phone_number_id", WHATSAPP_PHONE_NUMBER_ID)
    state.setdefault("whatsapp_waba_id", WHATSAPP_WABA_ID)
    state.setdefault("whatsapp_access_token", "EAAdemo" + secrets.token_urlsafe(48))
    state.setdefault("whatsapp_app_secret", secrets.token_hex(16))
    state.setdefault("whatsapp_verify_token", secrets.token_urlsafe(24))
    # The support mailbox on the demo's Dovecot, which the bridge reads and sends as.
    state.setdefault("email_account", EMAIL_ACCOUNT)
    state.setdefault("email_password", secrets.token_urlsafe(12))
    state["email_enabled"] = os.environ.get("DEMO_EMAIL", "1") != "0"
    state.update(ports)
    save_state(state)
    print(("Created" if fresh else "Reusing") + f" {DATA}")
    return state


def _write_synapse_config(state: dict[str, Any]) -> None:
    SYNAPSE_DIR.mkdir(parents=True, exist_ok=True)
    (SYNAPSE_DIR / "media_store").mkdir(exist_ok=True)
    log_config = {
        "version": 1,
        "formatters": {
            "precise": {
                "format": "%(asctime)s - %(name)s - %(lineno)d - %(levelname)s - "
                "%(request)s - %(message)s"
            }
        },
        "handlers": {
            "file": {
                "class": "logging.FileHandler",
                "formatter": "precise",
                "filename": str(DATA / "synapse.log"),
                "encoding": "utf8",
            }
        },
        "loggers": {
            "synapse": {"level": "INFO"},
            "synapse.storage.SQL": {"level": "WARNING"},
            "synapse.access": {"level": "INFO"},
            "twisted": {"level": "WARNING"},
        },
        "root": {"level": "INFO", "handlers": ["file"]},
        "disable_existing_loggers": False,
    }
    config: dict[str, Any] = {
        "server_name": SERVER_NAME,
        "public_baseurl": hs_url(state) + "/",
        "listeners": [
            {
                "port": state["hs_port"],
                "bind_addresses": [LOOPBACK],
                "type": "http",
                "tls": False,
                "x_forwarded": False,
                "resources": [{"names": ["client"], "compress": False}],
            }
        ],
        "database": {
            "name": "sqlite3",
            "args": {"database": str(SYNAPSE_DIR / "homeserver.db")},
        },
        "log_config": str(SYNAPSE_DIR / "log.config"),
        "media_store_path": str(SYNAPSE_DIR / "media_store"),
        "signing_key_path": str(SYNAPSE_DIR / "signing.key"),
        "registration_shared_secret": state["registration_shared_secret"],
        "macaroon_secret_key": state["macaroon_secret_key"],
        "form_secret": state["form_secret"],
        "report_stats": False,
        "enable_registration": False,
        "enable_metrics": False,
        "app_service_config_files": [str(REGISTRATION)],
        "trusted_key_servers": [],
        "suppress_key_server_warning": True,
        "url_preview_enabled": False,
        "presence": {"enabled": False},
        "federation_domain_whitelist": [],
        "allow_public_rooms_over_federation": False,
        "user_directory": {"enabled": True, "search_all_users": True},
        "require_auth_for_profile_requests": False,
        **RELAXED_RATE_LIMITS,
    }
    yaml = YAML()
    yaml.default_flow_style = False
    with open(SYNAPSE_DIR / "log.config", "w") as f:
        yaml.dump(log_config, f)
    with open(SYNAPSE_DIR / "homeserver.yaml", "w") as f:
        f.write("# Written by demo/setup.py on every demo start: a throwaway homeserver for the\n")
        f.write("# demo only (SQLite, loopback, no federation, relaxed rate limits).\n")
        yaml.dump(config, f)
    key_path = SYNAPSE_DIR / "signing.key"
    if not key_path.exists():
        # signedjson comes with Synapse; quicker than `synapse.app.homeserver --generate-keys`.
        from signedjson.key import generate_signing_key, write_signing_keys

        with open(key_path, "w") as f:
            write_signing_keys(f, [generate_signing_key("a_" + secrets.token_hex(2))])


def _write_bridge_config(state: dict[str, Any]) -> bool:
    """Write or update demo-data/config.yaml; True when the registration must be (re)made."""
    yaml = YAML()
    yaml.indent(4)  # as example-config.yaml and the bridge's own -g, so comments line up
    yaml.width = 200
    fresh = not BRIDGE_CONFIG.exists()
    source = EXAMPLE_CONFIG if fresh else BRIDGE_CONFIG
    data = yaml.load(source.read_text())
    before = json.dumps(data.get("appservice"), sort_keys=True, default=str)

    data["homeserver"]["address"] = hs_url(state)
    data["homeserver"]["domain"] = SERVER_NAME
    data["appservice"]["address"] = bridge_url(state)
    data["appservice"]["hostname"] = LOOPBACK
    data["appservice"]["port"] = state["bridge_port"]
    # The bridge runs with demo-data/ as its working directory.
    data["database"]["url"] = "sqlite:bridge.db"
    # Edit the example's sections in place, so that their documenting comments stay.
    _replace_keys(data["permissions"], [("*", "none"), (SERVER_NAME, "admin")])
    has_email = state["email_account"] in data["channels"]
    if state["whatsapp_account"] not in data["channels"] or has_email != state["email_enabled"]:
        # Fresh, or demo-data/ from before the demo had Telegram, WhatsApp or email, or email
        # was switched on or off: make the demo's accounts from the example's (with their
        # comments). Everything the demo needs in them is set below, on every start.
        data["channels"] = _demo_channels(state)
    channels = data["channels"]
    _set_telegram_channel(channels[state["telegram_account"]], state)
    _set_whatsapp_channel(channels[state["whatsapp_account"]], state)
    if state["email_enabled"]:
        _set_email_channel(channels[state["email_account"]], state)
    channel = channels[state["account"]]
    channel["type"] = "webhook"
    _set_staff(channel, state["staff_user"])
    channel["secret"] = state["webhook_secret"]
    channel["outbound_url"] = customer_url(state) + "/inbox"
    channel["delivery_deadline"] = 600
    channel["title"] = "Web chat"
    # The customer app runs on this machine: let attachment URLs point at it (loopback is
    # refused unless listed).
    channel["fetch_allow_hosts"] = ["127.0.0.1"]

    after = json.dumps(data.get("appservice"), sort_keys=True, default=str)
    with open(BRIDGE_CONFIG, "w") as f:
        if fresh:
            f.write(
                "# The bridge config of the local demo, written by demo/setup.py from\n"
                "# example-config.yaml. Addresses and ports are rewritten on every start.\n#\n"
            )
        yaml.dump(data, f)
    os.chmod(BRIDGE_CONFIG, 0o600)
    tokens_missing = "generate" in (data["appservice"]["as_token"], data["appservice"]["hs_token"])
    return fresh or tokens_missing or before != after or not REGISTRATION.exists()


def _set_staff(channel: CommentedMap, user: str) -> None:
    """``staff: [user]``, editing the list in place so the comment after it stays."""
    staff = channel.get("staff")
    if not isinstance(staff, list):
        channel["staff"] = [user]
        return
    del staff[1:]
    if staff:
        staff[0] = user
    else:
        staff.append(user)


def _channel_of_type(channels: CommentedMap, kind: str) -> CommentedMap | None:
    return next((c for c in channels.values() if c.get("type") == kind), None)


def _demo_channels(state: dict[str, Any]) -> CommentedMap:
    """The example config's channel accounts turned into the demo's: a webhook, a Telegram, a
    WhatsApp and (unless switched off) an email account, in this order."""
    channels = YAML().load(EXAMPLE_CONFIG.read_text())["channels"]
    items = [(state["account"], _channel_of_type(channels, "webhook") or CommentedMap())]
    kinds = [("telegram_account", "telegram"), ("whatsapp_account", "whatsapp")]
    if state["email_enabled"]:
        kinds.append(("email_account", "email"))
    for key, kind in kinds:
        items.append((state[key], _channel_of_type(channels, kind) or CommentedMap()))
    _replace_keys(channels, items)
    return channels


def _set_telegram_channel(channel: CommentedMap, state: dict[str, Any]) -> None:
    """The demo's Telegram account: a bot on the local simulator, polled for updates."""
    channel["type"] = "telegram"
    _set_staff(channel, state["staff_user"])
    channel["token"] = state["telegram_token"]
    channel["mode"] = "polling"
    channel["api_url"] = telegram_url(state)
    channel["webhook_url"] = None
    channel["webhook_secret"] = None
    channel["business"] = False
    # The simulator answers a waiting getUpdates as soon as a customer writes; a short poll
    # only bounds how long a poll hangs when the simulator goes away.
    channel["poll_timeout"] = 2
    channel["delivery_deadline"] = 600
    channel["request_timeout"] = 10
    channel["title"] = "Telegram"


def _set_whatsapp_channel(channel: CommentedMap, state: dict[str, Any]) -> None:
    """The demo's WhatsApp account: a business number on the local Cloud API simulator, which
    plays Meta both ways (the Graph API for sending, signed webhooks for receiving)."""
    channel["type"] = "whatsapp"
    _set_staff(channel, state["staff_user"])
    channel["phone_number_id"] = state["whatsapp_phone_number_id"]
    channel["business_account_id"] = state["whatsapp_waba_id"]
    channel["access_token"] = state["whatsapp_access_token"]
    channel["app_secret"] = state["whatsapp_app_secret"]
    channel["verify_token"] = state["whatsapp_verify_token"]
    channel["api_version"] = "v21.0"
    channel["base_url"] = whatsapp_url(state)
    # One customer's messages come one at a time here; a short hold keeps the demo snappy.
    channel["reorder_window"] = 0.3
    channel["delivery_deadline"] = 600
    channel["request_timeout"] = 10
    channel["title"] = "WhatsApp"


def _set_email_channel(channel: CommentedMap, state: dict[str, Any]) -> None:
    """The demo's email account: the support mailbox on the demo's Dovecot (IMAP, STARTTLS
    with its self-signed certificate) and the demo's SMTP server, which keeps what it gets."""
    channel["type"] = "email"
    _set_staff(channel, state["staff_user"])
    for key, port, security in (("imap", "imap_port", "starttls"), ("smtp", "smtp_port", "none")):
        server = channel.get(key)
        if not isinstance(server, dict):
            server = channel[key] = CommentedMap()
        server["host"] = LOOPBACK
        server["port"] = state[port]
        server["security"] = security
        server["user"] = "support"
        server["password"] = state["email_password"]
        server["verify_tls"] = False
    channel["from_address"] = "support@demo.test"
    channel["from_name"] = "Demo Company Support"
    channel["threading"] = "thread"
    channel["poll_interval"] = 1
    channel["delivery_deadline"] = 600
    channel["title"] = "Email"


def _replace_keys(mapping: CommentedMap, items: list[tuple[str, Any]]) -> None:
    """Give ``mapping`` exactly ``items``, keeping the comment that trailed its last entry
    (in ruamel that is where the next section's heading comment lives)."""
    last = next(reversed(mapping), None)
    trailing = mapping.ca.items.get(last) if last is not None else None
    for key in list(mapping):
        del mapping[key]
    for key, value in items:
        mapping[key] = value
    if trailing and items:
        mapping.ca.items[items[-1][0]] = trailing


def _generate_registration() -> None:
    """The registration is written by the bridge itself (``-g``), as in production."""
    result = subprocess.run(
        [sys.executable, "-m", "bridge", "-c", BRIDGE_CONFIG.name, "-g", "-r", REGISTRATION.name],
        cwd=DATA,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if result.returncode != 0:
        fail(f"python -m bridge -g failed:\n{result.stdout}{result.stderr}")
    print("Wrote the appservice registration with python -m bridge -g")


def prepare(_: argparse.Namespace) -> None:
    ports = _ports()
    _check_ports_free(ports)
    state = _state(ports)
    _write_synapse_config(state)
    if _write_bridge_config(state):
        _generate_registration()


# --------------------------------------------------------------------------- wait


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by the shell) counts as dead.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _tail(path: str | None, lines: int = 40) -> str:
    if not path:
        return ""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return ""
    return f"\n--- last lines of {path} ---\n" + "\n".join(text.splitlines()[-lines:])


def wait(args: argparse.Namespace) -> None:
    """Poll ``args.url`` until it answers one of ``args.status``; fail if ``args.pid`` dies."""
    wanted = {int(s) for s in args.status.split(",")}
    started = time.monotonic()
    deadline = started + args.timeout
    last = "no answer"
    while True:
        if args.pid and not _pid_alive(args.pid):
            fail(f"{args.what} exited during startup.{_tail(args.log)}")
        try:
            with urllib.request.urlopen(args.url, timeout=2) as resp:
                status = resp.status
        except urllib.error.HTTPError as e:
            status = e.code
            e.close()
        except OSError as e:
            status, last = None, str(e)
        if status in wanted:
            print(f"{args.what} is up ({time.monotonic() - started:.1f} s)")
            return
        if status is not None:
            last = f"HTTP {status}"
        if time.monotonic() > deadline:
            fail(
                f"{args.what} did not come up within {args.timeout:.0f} s ({last})."
                + _tail(args.log)
            )
        time.sleep(0.2)


# --------------------------------------------------------------------------- staff user


def _post_json(url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as e:
        with e:
            try:
                return e.code, json.loads(e.read() or b"{}")
            except ValueError:
                return e.code, {}


def staff(_: argparse.Namespace) -> None:
    """Create @staff:localhost with the saved password (shared-secret registration), once."""
    state = load_state()
    base = hs_url(state)
    status, _answer = _post_json(
        base + "/_matrix/client/v3/login",
        {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": state["staff_user"]},
            "password": state["staff_password"],
            "initial_device_display_name": "demo setup check",
        },
    )
    if status == 200:
        # Log that device out again, so it does not pile up in the user's session list.
        token = _answer.get("access_token")
        if token:
            req = urllib.request.Request(
                base + "/_matrix/client/v3/logout", b"{}",
                {"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
                method="POST",
            )  # fmt: skip
            try:
                urllib.request.urlopen(req, timeout=10).close()
            except OSError:
                pass
        print(f"Staff user {state['staff_user']} exists")
        return
    url = base + "/_synapse/admin/v1/register"
    with urllib.request.urlopen(url, timeout=30) as resp:
        nonce = json.loads(resp.read())["nonce"]
    password = state["staff_password"]
    mac = hmac.new(state["registration_shared_secret"].encode(), digestmod=hashlib.sha1)
    mac.update(nonce.encode() + b"\x00" + STAFF_LOCALPART.encode() + b"\x00")
    mac.update(password.encode() + b"\x00" + b"notadmin")
    status, answer = _post_json(
        url,
        {
            "nonce": nonce,
            "username": STAFF_LOCALPART,
            "displayname": "Demo Staff",
            "password": password,
            "admin": False,
            "mac": mac.hexdigest(),
        },
    )
    if status != 200:
        fail(
            f"could not create {state['staff_user']}: HTTP {status} {answer}. "
            "If demo-data/ is half-made, remove it (rm -rf demo-data) and start again."
        )
    print(f"Created staff user {state['staff_user']}")


# --------------------------------------------------------------------------- banner


def _bot_username() -> str:
    try:
        return str(YAML().load(BRIDGE_CONFIG.read_text())["bot"]["username"])
    except (OSError, KeyError, TypeError):
        return "bridgebot"


def banner(_: argparse.Namespace) -> None:
    s = load_state()
    rule = "=" * 78
    python = os.path.relpath(sys.executable, Path.cwd()) if sys.executable else "python"
    bot = _bot_username()
    mail = f"http://{LOOPBACK}:{s['mail_port']}"
    mailbox = ""
    if s.get("email_enabled"):
        mailbox = (
            ",\n  and a support mailbox (a local Dovecot and an SMTP server that keeps what"
            "\n  it is sent)"
        )
        email_part = f"""
     or as an email customer writing to support@demo.test (the bridge account
     {s["email_account"]} reads that mailbox over IMAP, {LOOPBACK}:{s["imap_port"]}, and
     answers through SMTP, {LOOPBACK}:{s["smtp_port"]}):
        - in a browser:  {mail}   (From name and address, subject, text;
                                          the company's replies below), or
        - from a shell:  {python} demo/email_customer.py send "Hello" --subject "Order 42\""""
    else:
        email_part = """
     (email is off in this run: Dovecot is not installed; as root, or after
      apt-get install dovecot-imapd, the next start adds an email customer)"""
    print(
        f"""
{rule}
  The demo is running: Synapse, the bridge, a customer web app, a simulated
  Telegram (a local Bot API server with the company's bot), a simulated
  WhatsApp (a local Cloud API with the company's business number
  +{WHATSAPP_DISPLAY_NUMBER}){mailbox}, all on {LOOPBACK}.

  1. Open a Matrix client (Element desktop, or Element web), choose "Sign in",
     edit the homeserver and enter:   {hs_url(s)}
        user name:  {STAFF_LOCALPART}        (full ID {s["staff_user"]})
        password:   {s["staff_password"]}

  2. Write to the company as a customer, either
        - in a browser:  {customer_url(s)}   (a form, and the conversation below it), or
        - from a shell:  {python} demo/customer.py send "Hello, I need help"
     or as a Telegram customer writing to the bot @{s["telegram_bot_username"]}:
        - in a browser:  {telegram_url(s)}   (name, text, an optional file), or
        - from a shell:  {python} demo/telegram_customer.py send "Привет"
     or as a WhatsApp customer writing to the business number:
        - in a browser:  {whatsapp_url(s)}   (name, phone number, text, a file), or
        - from a shell:  {python} demo/whatsapp_customer.py send "Hallo"{email_part}

  3. In the Matrix client, accept the invite to the new room ("Web chat", "Telegram",
     "WhatsApp" or, for a mail, the sender's name) and answer. The customer's page
     shows the answer (on WhatsApp with ticks: the phone reports sent, delivered,
     read, which the room shows as read receipts of the bridge bot and of the
     customer); this terminal prints it.

  WhatsApp templates (order_update (de), hello_world (en_US)), which the business may
  send even after the customer's 24 hours have passed:
     - in the WhatsApp room:  !bridge template          (lists them)
                              !bridge template hello_world en_US ACME
     - to any number, in a direct chat with @{bot}:{SERVER_NAME}:
          template {s["whatsapp_account"]} +491701234567 hello_world en_US ACME

  Bridge commands: start a direct chat with @{bot}:{SERVER_NAME} and send "help"
  (in portal rooms prefix them: "!bridge help").

  Logs: {DATA}/*.log      Stop everything: Ctrl-C
{rule}
""",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("prepare").set_defaults(run=prepare)
    w = sub.add_parser("wait")
    w.add_argument("url")
    w.add_argument("--status", default="200", help="comma-separated HTTP statuses that mean up")
    w.add_argument("--pid", type=int, default=0, help="fail at once if this process exits")
    w.add_argument("--timeout", type=float, default=120)
    w.add_argument("--log", help="log file to show on failure")
    w.add_argument("--what", default="the service")
    w.set_defaults(run=wait)
    sub.add_parser("staff").set_defaults(run=staff)
    sub.add_parser("banner").set_defaults(run=banner)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
