"""The config files the demo writes on every start (``demo/setup.py prepare``): Synapse's
``homeserver.yaml`` (a throwaway homeserver: SQLite, loopback, no federation, relaxed rate
limits) and the bridge's ``config.yaml``, made from ``example-config.yaml`` with its comments,
with the demo's webhook, Telegram, WhatsApp, VK, MAX and (unless switched off) email accounts, the
team inbox (``features.inbox``) for the webhook and email accounts, and a ``newsletter`` consent
list on the Telegram, WhatsApp and email accounts with its broadcast room
(``features.consent``, ``features.broadcast``); with ``DEMO_E2EE=1`` both are set up for
end-to-bridge encryption (``encryption``, Synapse's appservice E2EE features).
"""

from __future__ import annotations

import json
import os
import secrets
from typing import Any

from common import (
    DATA,
    LOOPBACK,
    NEWSLETTER,
    NEWSLETTER_KEYWORD,
    REPO,
    SERVER_NAME,
    bridge_url,
    customer_url,
    hs_url,
    max_url,
    telegram_url,
    vk_url,
    whatsapp_url,
)
from email_customer import SALES_ADDRESS
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap

# ``tests`` is on the path through ``common``.
from tests.infra.synapse import (
    E2EE_SETTINGS,
    LOCAL_SETTINGS,
    log_config,
    loopback_listener,
)

WELCOME = "Hello! Thank you for writing; someone of our team answers you here soon."
SALES_AWAY = "Our sales team is out of the office just now; we answer on the next working day."
CANNED_THANKS = "Thank you, {customer}! {agent} of team {team} is glad to help."
SALES_KEYWORDS = ["price", "prices", "quote", "offer"]
NEWSLETTER_TITLE = "The Demo Company newsletter"
NEWSLETTER_TEXT = (
    "Yes, send me the Demo Company newsletter here, about once a month. "
    "I can stop it any time by writing STOP."
)
CONSENT_COMMENT = (
    'The demo\'s newsletter (README "Local demo"): a Telegram deep link, a WhatsApp keyword and\n'
    "a sign-up form for email ask for it; staff broadcast in its broadcast room."
)
INBOX_COMMENT = (
    'The demo\'s team inbox (README "Team inbox"; example-config.yaml documents each key):\n'
    "the webhook and email accounts' conversations go to support, or to sales by keyword or\n"
    "by the address written to; sales is never open, so its away reply always goes out."
)
SIMULATED = {"telegram": "telegram_account", "whatsapp": "whatsapp_account", "vk": "vk_account",
             "max": "max_account"}  # fmt: skip
"""The channels the demo simulates: the key of each one's account name in demo.json."""
SYNAPSE_DIR = DATA / "synapse"
BRIDGE_CONFIG = DATA / "config.yaml"
REGISTRATION = DATA / "registration.yaml"
EXAMPLE_CONFIG = REPO / "example-config.yaml"


def write_synapse_config(state: dict[str, Any]) -> None:
    SYNAPSE_DIR.mkdir(parents=True, exist_ok=True)
    (SYNAPSE_DIR / "media_store").mkdir(exist_ok=True)
    config: dict[str, Any] = {
        "server_name": SERVER_NAME,
        "public_baseurl": hs_url(state) + "/",
        "listeners": [loopback_listener(state["hs_port"])],
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
        "app_service_config_files": [str(REGISTRATION)],
        **LOCAL_SETTINGS,
    }
    if state["e2ee_allowed"]:
        # The bridge's device in appservice mode (MSC2409, MSC3202); with DEMO_E2EE=1 also
        # every new room encrypted.
        config["experimental_features"] = E2EE_SETTINGS["experimental_features"]
    if state["e2ee"]:
        config["encryption_enabled_by_default_for_room_type"] = "all"
    yaml = YAML()
    yaml.default_flow_style = False
    with open(SYNAPSE_DIR / "log.config", "w") as f:
        yaml.dump(log_config(DATA / "synapse.log"), f)
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


def write_bridge_config(state: dict[str, Any]) -> bool:
    """Write or update demo-data/config.yaml; True when the registration must be (re)made."""
    yaml = YAML()
    yaml.indent(4)  # as example-config.yaml and the bridge's own -g, so comments line up
    yaml.width = 200
    fresh = not BRIDGE_CONFIG.exists()
    source = EXAMPLE_CONFIG if fresh else BRIDGE_CONFIG
    data = yaml.load(source.read_text())
    before = _registered(data)

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
    missing = any(state[key] not in data["channels"] for key in SIMULATED.values())
    if missing or has_email != state["email_enabled"]:
        # Fresh, or demo-data/ from before the demo had one of its channels, or email
        # was switched on or off: make the demo's accounts from the example's (with their
        # comments). Everything the demo needs in them is set below, on every start.
        data["channels"] = _demo_channels(state)
    channels = data["channels"]
    _set_telegram_channel(channels[state["telegram_account"]], state)
    _set_whatsapp_channel(channels[state["whatsapp_account"]], state)
    _set_vk_channel(channels[state["vk_account"]], state)
    _set_max_channel(channels[state["max_account"]], state)
    if state["email_enabled"]:
        _set_email_channel(channels[state["email_account"]], state)
    channel = channels[state["account"]]
    channel["type"] = "webhook"
    _set_staff(channel, _inbox_staff(state))
    channel["secret"] = state["webhook_secret"]
    channel["outbound_url"] = customer_url(state) + "/inbox"
    channel["delivery_deadline"] = 600
    channel["title"] = "Web chat"
    # The customer app runs on this machine: let attachment URLs point at it (loopback is
    # refused unless listed).
    channel["fetch_allow_hosts"] = ["127.0.0.1"]
    _set_inbox(data, state)
    _set_consent(data, state)
    _set_encryption(data, state)

    after = _registered(data)
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


def _registered(data: CommentedMap) -> str:
    """What of the config goes into the registration: the ``appservice`` section, and
    ``encryption.allow`` (which adds the MSC3202 and MSC4190 flags)."""
    encryption = data.get("encryption")
    allow = encryption.get("allow") if isinstance(encryption, dict) else None
    return json.dumps([data.get("appservice"), allow], sort_keys=True, default=str)


def _set_encryption(data: CommentedMap, state: dict[str, Any]) -> None:
    """``encryption``: allowed once a run had DEMO_E2EE=1, new rooms encrypted while it has."""
    if not isinstance(data.get("encryption"), dict):  # demo-data/ from before encryption
        data["encryption"] = YAML().load(EXAMPLE_CONFIG.read_text())["encryption"]
    data["encryption"]["allow"] = state["e2ee_allowed"]
    data["encryption"]["default"] = state["e2ee"]


def _inbox_staff(state: dict[str, Any]) -> list[str]:
    """``staff`` of the inbox's accounts: none, the inbox invites. With DEMO_E2EE=1 the staff
    user is invited when the room is made: the inbox invites after the first message, which
    is then encrypted for the room's members before the invite and unreadable to the invitee
    (README "End-to-bridge encryption", known limits)."""
    return [state["staff_user"]] if state["e2ee"] else []


def _set_staff(channel: CommentedMap, users: list[str]) -> None:
    """``staff: users``, editing the list in place so the comment after it stays."""
    staff = channel.get("staff")
    if not isinstance(staff, list):
        channel["staff"] = users
        return
    staff[:] = users


def _set_inbox(data: CommentedMap, state: dict[str, Any]) -> None:
    """The team inbox of the webhook and email accounts (Telegram and WhatsApp keep their
    ``staff``): teams ``support`` and ``sales`` with the staff user, routing by keyword (to
    sales) and by the address written to (``sales@demo.test``), and sales welcoming the
    customer and never open, so that its away reply always goes out."""

    def team(**settings: Any) -> dict[str, Any]:
        return {
            "members": [state["staff_user"]],
            "assignment": "round_robin",
            **settings,
            "canned": {"thanks": CANNED_THANKS},
        }

    accounts = {state["account"]: "support"}
    if state["email_enabled"]:
        accounts[state["email_account"]] = "support"
    inbox = {
        "teams": {
            "support": team(replies={"welcome": WELCOME}),
            # Never open (no weekly hours): its away reply always goes out.
            "sales": team(
                hours={"timezone": "UTC", "weekly": {}},
                replies={"welcome": WELCOME, "away": SALES_AWAY},
            ),
        },
        "accounts": accounts,
        "routing": [
            {"team": "sales", "keywords": list(SALES_KEYWORDS)},
            {"team": "sales", "to": [SALES_ADDRESS]},
        ],
        "tick": "5s",
    }
    features = data.get("features")
    if not isinstance(features, dict):
        data["features"] = features = CommentedMap()  # the example's are all commented out
    if "inbox" not in features:
        features.yaml_set_comment_before_after_key("inbox", before=INBOX_COMMENT, indent=4)
    features["inbox"] = inbox


def newsletter_accounts(state: dict[str, Any]) -> list[str]:
    """The accounts the newsletter is offered and broadcast on."""
    accounts = [state["telegram_account"], state["whatsapp_account"]]
    if state["email_enabled"]:
        accounts.append(state["email_account"])
    return accounts


def _set_consent(data: CommentedMap, state: dict[str, Any]) -> None:
    """The ``newsletter`` list (deep link ``/start newsletter``, keyword NEWSLETTER, the form
    at ``<bridge>/features/consent/form/newsletter``) and its broadcasts by the staff user.
    The links point at the bridge's own listener, which a browser on this machine reaches."""
    features = data["features"]
    if "consent" not in features:
        features.yaml_set_comment_before_after_key("consent", before=CONSENT_COMMENT, indent=4)
    accounts = newsletter_accounts(state)
    features["consent"] = {
        "lists": {
            NEWSLETTER: {
                "title": NEWSLETTER_TITLE,
                "version": "2026-12",
                "text": NEWSLETTER_TEXT,
                "keywords": [NEWSLETTER_KEYWORD],
                "start": NEWSLETTER,
                "accounts": accounts,
            }
        },
        "public_url": bridge_url(state),
    }
    # Well below what the simulators allow (Telegram about 30 a second, 1 a second to one
    # chat, which a broadcast never exceeds: one message per chat).
    rates = {state["telegram_account"]: 20, state["whatsapp_account"]: 20}
    if state["email_enabled"]:
        rates[state["email_account"]] = 5
    features["broadcast"] = {"staff": [state["staff_user"]], "rates": rates}
    # Data protection: privacy export|erase|report|retention|audit (README "Data protection");
    # the original of each mail is kept 30 days.
    features["privacy"] = {"retention": {"default": {"raw_mail_days": 30}}}


def _channel_of_type(channels: CommentedMap, kind: str) -> CommentedMap | None:
    return next((c for c in channels.values() if c.get("type") == kind), None)


def _demo_channels(state: dict[str, Any]) -> CommentedMap:
    """The example config's channel accounts turned into the demo's: a webhook account, one
    for each simulated channel and (unless switched off) an email account, in this order."""
    channels = YAML().load(EXAMPLE_CONFIG.read_text())["channels"]
    items = [(state["account"], _channel_of_type(channels, "webhook") or CommentedMap())]
    kinds = [(key, kind) for kind, key in SIMULATED.items()]
    if state["email_enabled"]:
        kinds.append(("email_account", "email"))
    for key, kind in kinds:
        items.append((state[key], _channel_of_type(channels, kind) or CommentedMap()))
    _replace_keys(channels, items)
    return channels


def _set_telegram_channel(channel: CommentedMap, state: dict[str, Any]) -> None:
    """The demo's Telegram account: a bot on the local simulator, polled for updates."""
    channel["type"] = "telegram"
    _set_staff(channel, [state["staff_user"]])
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
    _set_staff(channel, [state["staff_user"]])
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


def _set_vk_channel(channel: CommentedMap, state: dict[str, Any]) -> None:
    """The demo's VK account: a community on the local VK API simulator, which posts the
    customers' messages to the bridge through the Callback API (with the secret key) and takes
    the answers as ``messages.send`` calls."""
    channel["type"] = "vk"
    _set_staff(channel, [state["staff_user"]])
    channel["group_id"] = state["vk_group_id"]
    channel["access_token"] = state["vk_access_token"]
    channel["mode"] = "callback"
    channel["confirmation_code"] = state["vk_confirmation_code"]
    channel["secret"] = state["vk_secret"]
    channel["base_url"] = vk_url(state)
    channel["delivery_deadline"] = 600
    channel["request_timeout"] = 10
    channel["title"] = "VK"


def _set_max_channel(channel: CommentedMap, state: dict[str, Any]) -> None:
    """The demo's MAX account: a bot on the local MAX Bot API simulator in webhook mode (the
    bridge subscribes its listener; loopback HTTP, which real MAX would refuse, does here)."""
    channel["type"] = "max"
    _set_staff(channel, [state["staff_user"]])
    channel["token"] = state["max_token"]
    channel["mode"] = "webhook"
    channel["api_url"] = max_url(state)
    channel["webhook_url"] = bridge_url(state)
    channel["delivery_deadline"] = 600
    channel["request_timeout"] = 10
    channel["title"] = "MAX"


def _set_email_channel(channel: CommentedMap, state: dict[str, Any]) -> None:
    """The demo's email account: the support mailbox on the demo's Dovecot (IMAP, STARTTLS
    with its self-signed certificate) and the demo's SMTP server, which keeps what it gets."""
    channel["type"] = "email"
    _set_staff(channel, _inbox_staff(state))
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
