"""Sets up (first run) or refreshes (later runs) ``demo-data/`` for ``scripts/demo.sh``.

    python demo/setup.py prepare     # settings, Synapse config, bridge config, registration
    python demo/setup.py wait URL    # wait until URL answers (while a given pid lives)
    python demo/setup.py staff       # make sure @staff:localhost exists (Synapse running)
    python demo/setup.py banner      # print how to use the running demo

Ports come from DEMO_HS_PORT (8008), DEMO_BRIDGE_PORT (29340), DEMO_CUSTOMER_PORT (8090),
DEMO_TELEGRAM_PORT (8091), DEMO_WHATSAPP_PORT (8092), DEMO_MAIL_PORT (8093, the email page),
DEMO_VK_PORT (8094), DEMO_MAX_PORT (8095), DEMO_IMAP_PORT (8143) and DEMO_SMTP_PORT (8025) on
every run; secrets, the staff password, the Telegram bot token, the WhatsApp app secret, verify
token and access token, the VK community's token, Callback API secret and confirmation code, the
MAX bot's token and the support mailbox's password are made once and kept in
demo-data/demo.json. DEMO_EMAIL=0
(scripts/demo.sh sets it when Dovecot is missing) leaves the email account out of the bridge
config. DEMO_E2EE=1 turns on end-to-bridge encryption (README "End-to-bridge encryption"):
every new room is encrypted; a later run without it makes new rooms plain again but keeps
encryption allowed, so that the rooms made encrypted keep working. The config files
themselves are written by ``demo/configs.py``.
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
    MAX_ACCOUNT,
    MAX_BOT_USERNAME,
    NEWSLETTER,
    NEWSLETTER_KEYWORD,
    SERVER_NAME,
    STAFF_LOCALPART,
    STAFF_USER,
    TELEGRAM_ACCOUNT,
    TELEGRAM_BOT_USERNAME,
    VK_ACCOUNT,
    VK_COMMUNITY_NAME,
    VK_GROUP_ID,
    WHATSAPP_ACCOUNT,
    WHATSAPP_DISPLAY_NUMBER,
    WHATSAPP_PHONE_NUMBER_ID,
    WHATSAPP_WABA_ID,
    customer_url,
    hs_url,
    load_state,
    max_url,
    newsletter_form_url,
    save_state,
    telegram_url,
    vk_url,
    whatsapp_url,
)
from configs import BRIDGE_CONFIG, REGISTRATION, write_bridge_config, write_synapse_config
from ruamel.yaml import YAML

DEFAULT_PORTS = {"hs_port": 8008, "bridge_port": 29340, "customer_port": 8090,
                 "telegram_port": 8091, "whatsapp_port": 8092, "mail_port": 8093,
                 "vk_port": 8094, "max_port": 8095, "imap_port": 8143,
                 "smtp_port": 8025}  # fmt: skip
PORT_ENV = {"hs_port": "DEMO_HS_PORT", "bridge_port": "DEMO_BRIDGE_PORT",
            "customer_port": "DEMO_CUSTOMER_PORT",
            "telegram_port": "DEMO_TELEGRAM_PORT",
            "whatsapp_port": "DEMO_WHATSAPP_PORT",
            "mail_port": "DEMO_MAIL_PORT",
            "vk_port": "DEMO_VK_PORT",
            "max_port": "DEMO_MAX_PORT",
            "imap_port": "DEMO_IMAP_PORT",
            "smtp_port": "DEMO_SMTP_PORT"}  # fmt: skip
PORT_WHAT = {"hs_port": "Synapse", "bridge_port": "the bridge",
             "customer_port": "the customer app",
             "telegram_port": "the Telegram simulator",
             "whatsapp_port": "the WhatsApp simulator",
             "mail_port": "the email customer page",
             "vk_port": "the VK simulator",
             "max_port": "the MAX simulator",
             "imap_port": "the demo's Dovecot (IMAP)",
             "smtp_port": "the demo's SMTP server"}  # fmt: skip


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
    # The VK community: what its Manage -> API usage page would show (a community token, the
    # Callback API's secret key and the string VK wants back when it confirms the address).
    state.setdefault("vk_account", VK_ACCOUNT)
    state.setdefault("vk_group_id", VK_GROUP_ID)
    state.setdefault("vk_access_token", "vk1.a." + secrets.token_urlsafe(48))
    state.setdefault("vk_secret", secrets.token_hex(16))
    state.setdefault("vk_confirmation_code", secrets.token_hex(4))
    # The MAX bot: the token the MAX business platform shows for it (the simulator accepts
    # only it); the bridge makes the webhook subscription's secret itself.
    state.setdefault("max_account", MAX_ACCOUNT)
    state.setdefault("max_token", secrets.token_urlsafe(32))
    state.setdefault("max_bot_username", MAX_BOT_USERNAME)
    # The support mailbox on the demo's Dovecot, which the bridge reads and sends as.
    state.setdefault("email_account", EMAIL_ACCOUNT)
    state.setdefault("email_password", secrets.token_urlsafe(12))
    state["email_enabled"] = os.environ.get("DEMO_EMAIL", "1") != "0"
    # DEMO_E2EE=1: new rooms encrypted. Once a run had it, the bridge keeps encryption allowed
    # (rooms stay encrypted for good, and the bridge must go on reading them).
    state["e2ee"] = os.environ.get("DEMO_E2EE", "0") == "1"
    state["e2ee_allowed"] = state["e2ee"] or bool(state.get("e2ee_allowed"))
    state.update(ports)
    save_state(state)
    print(("Created" if fresh else "Reusing") + f" {DATA}")
    return state


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
    write_synapse_config(state)
    if write_bridge_config(state):
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
  +{WHATSAPP_DISPLAY_NUMBER}), a simulated VK (a local VK API with the company's
  community), a simulated MAX (a local MAX Bot API with the company's
  bot){mailbox}, all on {LOOPBACK}.

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
        - from a shell:  {python} demo/whatsapp_customer.py send "Hallo"
     or as a VK user writing to the community {VK_COMMUNITY_NAME} (vk.com/club{s["vk_group_id"]}):
        - in a browser:  {vk_url(s)}   (name, user id, text, a file), or
        - from a shell:  {python} demo/vk_customer.py send "Здравствуйте"
     or as a MAX user writing to the bot @{s["max_bot_username"]}:
        - in a browser:  {max_url(s)}   (name, user id, text, a file), or
        - from a shell:  {python} demo/max_customer.py send "Добрый день"{email_part}

  3. In the Matrix client, accept the invite to the new room ("Web chat", "Telegram",
     "WhatsApp", "VK", "MAX" or, for a mail, the sender's name) and answer. The
     customer's page shows the answer (on WhatsApp with ticks: the phone reports
     sent, delivered, read, which the room shows as read receipts of the bridge bot
     and of the customer); this terminal prints it.

  WhatsApp templates (order_update (de), hello_world (en_US)), which the business may
  send even after the customer's 24 hours have passed:
     - in the WhatsApp room:  !bridge template          (lists them)
                              !bridge template hello_world en_US ACME
     - to any number, in a direct chat with @{bot}:{SERVER_NAME}:
          template {s["whatsapp_account"]} +491701234567 hello_world en_US ACME

{_newsletter_part(s, python)}
  Bridge commands: start a direct chat with @{bot}:{SERVER_NAME} and send "help"
  (in portal rooms prefix them: "!bridge help"). A customer's data: in their room,
  "!bridge privacy export <account>:<id>" (the topic names both); also privacy erase,
  report, retention, audit.
{_encryption_part(s)}
  Logs: {DATA}/*.log      Stop everything: Ctrl-C
{rule}
""",
        flush=True,
    )


def _encryption_part(s: dict[str, Any]) -> str:
    """The banner's part on end-to-bridge encryption: what is on, and what to look at."""
    if s.get("e2ee"):
        return """
  Encryption is on (DEMO_E2EE=1): every new room is encrypted, the bridge's device is the
  session "Business Bridge" of the bot. In Element: room settings > Security & Privacy
  says "Encrypted"; the shield beside a customer's message says it was encrypted by a
  device not verified by its owner (the bot's device encrypts for the ghosts); the bot's
  profile lists its session. (README "End-to-bridge encryption")
"""
    if s.get("e2ee_allowed"):
        return """
  New rooms are plain (no DEMO_E2EE=1), but the bridge still reads the rooms an earlier run
  made encrypted.
"""
    return ""


def _newsletter_part(s: dict[str, Any], python: str) -> str:
    """The banner's part on consent and broadcasts: how to subscribe on each channel, where
    staff broadcast, how to unsubscribe."""
    bot = s["telegram_bot_username"]
    email = (
        f"""
     - email: the sign-up form {newsletter_form_url(s)}
       (then open the confirmation mail's link on http://{LOOPBACK}:{s["mail_port"]}
       and press Confirm)"""
        if s.get("email_enabled")
        else ""
    )
    return f"""  The newsletter (consent with double opt-in, and broadcasts):
     - Telegram: the deep link t.me/{bot}?start={NEWSLETTER}, here
       {telegram_url(s)}/?start={NEWSLETTER}  (fills in "/start {NEWSLETTER}": send it,
       then press "Yes, subscribe")
     - WhatsApp: the keyword {NEWSLETTER_KEYWORD}, here
       {whatsapp_url(s)}/?text={NEWSLETTER_KEYWORD}  (then tap the reply button){email}
     - staff: accept the invite to "Broadcast: ..." and write the message there, then
       "send"; the progress and the final report appear in that room. "consent link
       {NEWSLETTER}" in a direct chat with the bot gives the links with QR codes
     - unsubscribe: STOP on any channel, or the link in a broadcast mail
"""


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
