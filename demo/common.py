"""Shared bits of the demo scripts: where demo-data lives, its settings, the webhook signature.

Everything the demo creates is under ``demo-data/`` at the repository root (``DEMO_DATA`` to
put it elsewhere). ``demo-data/demo.json`` holds the settings the scripts share: ports, the
staff user's password, the webhook secret, the Telegram bot token, the WhatsApp app secret and
access token, the VK community's token and Callback API secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import mimetypes
import os
import re
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
# The simulators, the mail servers and Synapse's test settings live in the test suite (the demo
# installs the project's test extra): the scripts import them from ``tests``.
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
DATA = Path(os.environ.get("DEMO_DATA") or REPO / "demo-data").resolve()
STATE_FILE = DATA / "demo.json"
LOOPBACK = "127.0.0.1"

SERVER_NAME = "localhost"
STAFF_LOCALPART = "staff"
STAFF_USER = f"@{STAFF_LOCALPART}:{SERVER_NAME}"
ACCOUNT = "demo"
"""The webhook channel account of the demo (``channels.demo`` in the bridge config)."""
TELEGRAM_ACCOUNT = "demo-telegram"
"""The Telegram channel account of the demo, a bot on the local Bot API simulator."""
TELEGRAM_BOT_USERNAME = "demo_company_bot"
WHATSAPP_ACCOUNT = "demo-whatsapp"
"""The WhatsApp channel account of the demo, a business number on the local Cloud API simulator."""
WHATSAPP_PHONE_NUMBER_ID = "106540352242922"
"""Ids as Meta's dashboard shows them: the business number's id and the WhatsApp Business
Account's (WABA) id. The simulator answers only for these."""
WHATSAPP_WABA_ID = "102290129340398"
WHATSAPP_DISPLAY_NUMBER = "4930901820"
"""The business's own phone number, as customers see it (+49 30 901820)."""
WHATSAPP_BUSINESS_NAME = "Demo Company"
VK_ACCOUNT = "demo-vk"
"""The VK channel account of the demo, a community on the local VK API simulator."""
VK_GROUP_ID = 229_340_001
"""The community's id (vk.com/club229340001); the simulator answers only for its token."""
VK_COMMUNITY_NAME = "Demo Company"
MAX_ACCOUNT = "demo-max"
"""The MAX channel account of the demo, a bot on the local MAX Bot API simulator."""
MAX_BOT_USERNAME = "demo_company_max_bot"
EMAIL_ACCOUNT = "demo-email"
"""The email channel account of the demo: the support mailbox on the demo's Dovecot."""

SIGNATURE_HEADER = "X-Bridge-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"


def load_state() -> dict[str, Any]:
    """``demo-data/demo.json``; exits with a hint when the demo was never set up."""
    try:
        return dict(json.loads(STATE_FILE.read_text()))
    except FileNotFoundError:
        raise SystemExit(
            f"{STATE_FILE} is missing: start the demo first (bash scripts/demo.sh)"
        ) from None


def save_state(state: dict[str, Any]) -> None:
    DATA.mkdir(parents=True, exist_ok=True)
    tmp = STATE_FILE.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    os.chmod(tmp, 0o600)
    tmp.replace(STATE_FILE)


def hs_url(state: dict[str, Any]) -> str:
    return f"http://{LOOPBACK}:{state['hs_port']}"


def bridge_url(state: dict[str, Any]) -> str:
    return f"http://{LOOPBACK}:{state['bridge_port']}"


def customer_url(state: dict[str, Any]) -> str:
    return f"http://{LOOPBACK}:{state['customer_port']}"


def telegram_url(state: dict[str, Any]) -> str:
    """The Telegram simulator: the Bot API for the bridge, a customer page for people."""
    return f"http://{LOOPBACK}:{state['telegram_port']}"


def whatsapp_url(state: dict[str, Any]) -> str:
    """The WhatsApp simulator: the Graph API for the bridge, a customer page for people."""
    return f"http://{LOOPBACK}:{state['whatsapp_port']}"


def vk_url(state: dict[str, Any]) -> str:
    """The VK simulator: the VK API for the bridge, a customer page for people."""
    return f"http://{LOOPBACK}:{state['vk_port']}"


def vk_callback_url(state: dict[str, Any]) -> str:
    """Where "VK" (the simulator) posts the Callback API events of the demo's VK account."""
    return f"{bridge_url(state)}/connectors/{state['vk_account']}/callback"


def max_url(state: dict[str, Any]) -> str:
    """The MAX simulator: the MAX Bot API for the bridge, a customer page for people."""
    return f"http://{LOOPBACK}:{state['max_port']}"


NEWSLETTER = "newsletter"
"""The demo's consent list (``features.consent``): its name and Telegram deep-link payload."""
NEWSLETTER_KEYWORD = "NEWSLETTER"
"""The word that asks for it on WhatsApp (and by mail)."""


def newsletter_form_url(state: dict[str, Any]) -> str:
    """The newsletter's sign-up form for email, served by the bridge."""
    return f"{bridge_url(state)}/features/consent/form/{NEWSLETTER}"


def whatsapp_webhook_url(state: dict[str, Any]) -> str:
    """Where "Meta" (the simulator) delivers the webhooks of the demo's WhatsApp account."""
    return f"{bridge_url(state)}/connectors/{state['whatsapp_account']}/webhook"


# The signature of the webhook protocol, written out here on purpose (rather than imported from
# the bridge) to show how little an integrator needs: ``t=<unix seconds>,sha256=<hex>``, the
# HMAC-SHA256 of "<unix seconds>." followed by the raw body. A timestamp more than five minutes
# off is refused, so a captured request cannot be replayed later.
SIGNATURE_TOLERANCE = 300


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    when = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{when}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={when},sha256={digest}"


def verify(secret: str, body: bytes, header: str | None) -> bool:
    if not header:
        return False
    stamp, _, _ = header.strip().partition(",")
    when = stamp.removeprefix("t=")
    if not stamp.startswith("t=") or not when.isdigit() or len(when) > 12:
        return False
    if abs(time.time() - int(when)) > SIGNATURE_TOLERANCE:
        return False
    return hmac.compare_digest(sign(secret, body, int(when)), header.strip().lower())


# --------------------------------------------------------------------------- customer scripts


class JsonLines:
    """A customer script's message store: one JSON object a line, appended by the CLI and the
    web page alike, read whole (a line being written right now is skipped)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, record: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")

    def records(self) -> list[dict[str, Any]]:
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        out = []
        for line in lines:
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out


def post_json(
    url: str, body: bytes, what: str, headers: dict[str, str] | None = None, timeout: float = 60
) -> tuple[int, Any]:
    """POST ``body`` (JSON) to ``url``; returns (HTTP status, decoded answer), or (0, why) when
    ``what`` (e.g. "the bridge") cannot be reached."""
    req = urllib.request.Request(
        url, body, {"Content-Type": "application/json", **(headers or {})}, method="POST"
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as e:
        with e:
            status, raw = e.code, e.read()
    except OSError as e:
        return 0, f"{what} is not reachable at {url} ({e}); is the demo running?"
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


def file_payload(file: Path) -> dict[str, str]:
    """A file for a simulator's ``/api/send``: name, MIME type and base64 content."""
    return {
        "name": file.name,
        "mimetype": mimetypes.guess_type(file.name)[0] or "application/octet-stream",
        "data_base64": base64.b64encode(file.read_bytes()).decode(),
    }


def print_send_result(status: int, answer: Any, success: Callable[[dict[str, Any]], str]) -> int:
    """The end of a ``send`` command: ``success(answer)`` on an ok answer, else the error."""
    if status == 200 and isinstance(answer, dict) and answer.get("ok"):
        print(success(answer))
        return 0
    error = answer.get("error") if isinstance(answer, dict) else answer
    print(f"Not sent: {f'HTTP {status} ' if status else ''}{error}", file=sys.stderr)
    return 1


def short(text: str, limit: int = 200) -> str:
    """``text`` on one line, cut for the terminal."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def joined(*parts: str) -> str:
    return " ".join(part for part in parts if part)


def safe_name(name: str) -> str:
    """``name`` usable as a file name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)[:80] or "file"
