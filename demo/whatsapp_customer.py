"""The demo's WhatsApp: a local WhatsApp Business Cloud API with the company's business number,
and a customer writing to that number.

    python demo/whatsapp_customer.py serve                  # started by scripts/demo.sh
    python demo/whatsapp_customer.py send "Hallo"           # write to the business as a customer
    python demo/whatsapp_customer.py send "Hi" --number "+49 170 9876543" --name "Max Muster"
    python demo/whatsapp_customer.py send "Die Rechnung" --file rechnung.pdf

``serve`` runs the test suite's Cloud API simulator (``tests/connectors/whatsapp/simulator.py``)
on DEMO_WHATSAPP_PORT (8092). It plays Meta for the bridge's ``demo-whatsapp`` account both
ways, as graph.facebook.com would: it answers the Graph API (``/v21.0/<number id>/messages``,
media uploads and downloads, the template list) and it delivers what customers write to the
bridge as signed webhooks (``X-Hub-Signature-256``) at ``/connectors/demo-whatsapp/webhook``,
after the verification handshake (``hub.challenge``) Meta makes when a callback URL is set.
A simulated phone reports each of the business's messages back with status webhooks: ``sent``
at once, ``delivered`` after a second and ``read`` after three. Two approved templates exist,
``order_update`` (de) and ``hello_world`` (en_US).

The same port serves, outside the Graph API, a page for people (write as a WhatsApp customer,
see the business's answers and templates, tap the reply buttons of its interactive messages)
and a small control API that the page and ``send`` use: a customer's message (or tap, a
``button_reply``) comes from WhatsApp's side, so the simulator sends it to the bridge as a
webhook rather than the bridge fetching it. ``/?text=<text>`` opens the page with the text
ready to send, as a click-to-chat link ``wa.me/<number>?text=<text>`` opens the app.

The conversation is kept in ``demo-data/whatsapp-messages.jsonl`` (and files in
``demo-data/whatsapp-files/``), so that it and the customers' 24-hour windows survive a restart.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import re
import sys
import time
from pathlib import Path
from typing import Any

import page
from common import (
    DATA,
    WHATSAPP_BUSINESS_NAME,
    WHATSAPP_DISPLAY_NUMBER,
    JsonLines,
    joined,
    load_state,
    short,
    whatsapp_url,
    whatsapp_webhook_url,
)
from page import CustomerPage, Refused, json_answer, render
from whatsapp_page import PAGE

MESSAGES = DATA / "whatsapp-messages.jsonl"
FILES = DATA / "whatsapp-files"
DEFAULT_NUMBER = "+491701234567"
DEFAULT_NAME = "Jana Schmidt"
TEMPLATES = (
    ("order_update", "de", "Hallo {{1}}, Ihre Bestellung {{2}} ist unterwegs."),
    ("hello_world", "en_US", "Hello from {{1}}!"),
)
"""The business's approved message templates (name, language, body)."""
PHONE_STATUSES = (("sent", 0.3), ("delivered", 1.0), ("read", 3.0))
"""When the customer's phone reports a business message, in seconds after it was accepted."""
STATUS_ORDER = {"sent": 1, "delivered": 2, "read": 3, "failed": 4}
TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
NO_CAPTION = ("audio", "sticker")
"""WhatsApp sends these without a caption: a text with them goes as a message of its own."""


def normalize_number(raw: str) -> str:
    """A phone number in international form (``+49 170 1234567``) as a wa_id (digits)."""
    text = raw.strip()
    if not re.fullmatch(r"\+?[0-9][0-9 ()./-]*", text):
        raise ValueError(f"{raw!r} is not a phone number; write it like {DEFAULT_NUMBER}")
    digits = re.sub(r"\D", "", text)
    if not 7 <= len(digits) <= 15:
        raise ValueError(f"{raw!r} does not have 7 to 15 digits")
    return digits


# --------------------------------------------------------------------------- the store


STORE = JsonLines(MESSAGES)


def conversation(number: str | None, log: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The messages with ``number`` (every number if None), oldest first, with the statuses
    of the business's messages, its reactions, and which customer messages it has read."""
    shown: list[dict[str, Any]] = []
    by_id: dict[str, dict[str, Any]] = {}
    for r in log:
        if number is not None and r.get("number") != number:
            continue
        kind = r.get("type")
        if kind == "message":
            msg = dict(r, reactions=[], status=None, read=False)
            shown.append(msg)
            by_id[str(r.get("wamid"))] = msg
            continue
        target = by_id.get(str(r.get("target")))
        if target is None:
            continue
        if kind == "status":
            old = STATUS_ORDER.get(str(target["status"]), 0)
            if STATUS_ORDER.get(str(r.get("status")), 0) > old:
                target["status"] = r.get("status")
        elif kind == "reaction":
            target["reactions"] = [r["emoji"]] if r.get("emoji") else []
        elif kind == "read":
            # Marking one message read marks the earlier ones of the chat read too.
            for msg in shown:
                if msg["number"] == target["number"] and msg["direction"] == "customer":
                    msg["read"] = True
                if msg is target:
                    break
    return shown


def _digest(wamid: str) -> str:
    """A short file-name-safe stand-in for a message id (wamids are base64)."""
    return hashlib.sha256(wamid.encode()).hexdigest()[:12]


# --------------------------------------------------------------------------- the simulator


class DemoWhatsApp(CustomerPage):
    """The simulator plus what a person needs around it: the page, the control API, the
    conversation log, the customer's phone reporting statuses, and terminal lines."""

    def __init__(self, state: dict[str, Any], args: argparse.Namespace) -> None:
        from tests.connectors.whatsapp import payloads as wa
        from tests.connectors.whatsapp import simulator

        super().__init__(state, args, STORE, FILES)
        self.wa = wa
        self.simulator = simulator
        self.sim = simulator.WhatsAppSimulator(
            state["whatsapp_access_token"],
            phone_number_id=state["whatsapp_phone_number_id"],
            display_phone_number=WHATSAPP_DISPLAY_NUMBER,
            waba_id=state["whatsapp_waba_id"],
            verified_name=WHATSAPP_BUSINESS_NAME,
            app_secret=state["whatsapp_app_secret"],
            verify_token=state["whatsapp_verify_token"],
            webhook_url=whatsapp_webhook_url(state),
            # Meta retries a webhook the bridge did not take for days; a few tries do here.
            webhook_max_attempts=4,
            webhook_retry_delay=1.0,
        )
        for name, language, body in TEMPLATES:
            self.sim.add_template(name, language, body)
        self.seen = {"sent": 0, "read_receipts": 0, "rejected": 0}
        self.names: dict[str, str] = {}
        self.verified = False
        self.tasks: set[asyncio.Task[None]] = set()

    def who(self, number: str) -> str:
        name = self.names.get(number)
        return f"{name} (+{number})" if name else f"+{number}"

    # ------------------------------------------------------------------ restart

    def restore(self) -> None:
        """Give a fresh simulator what the last run knew: the customers' messages (so the bridge
        can mark them read and react to them) and when each customer last wrote (their 24-hour
        windows, so the business may still answer them freely)."""
        sim = self.sim
        for r in self.log:
            if r.get("type") != "message" or r.get("direction") != "customer":
                continue
            number, wamid, at = str(r["number"]), str(r["wamid"]), float(r["time"])
            self.names[number] = str(r.get("name") or number)
            sim.inbound[wamid] = self.simulator.InboundMessage(
                wamid, number, str(r.get("kind") or "text"), at
            )
            sim.open_window(number, at)  # the log is in time order: the last one wins

    # ------------------------------------------------------------------ customer -> business

    async def customer_message(
        self, number: str, name: str, text: str, file: dict[str, Any] | None
    ) -> dict[str, Any]:
        """Send one message from a WhatsApp user to the business, as Meta would: a signed
        webhook to the bridge. Returns what the page and the CLI show."""
        sim, wa = self.sim, self.wa
        messages: list[dict[str, Any]] = []
        saved = None
        kind = "text"
        if file is not None:
            data, filename, mimetype = file["data"], file["name"], file["mimetype"]
            kind = file["kind"]
            caption = text if text and kind not in NO_CAPTION else None
            only_documents = filename if kind == "document" else None  # others have no name
            media = sim.media_message(
                kind, number, data, mimetype, caption=caption, filename=only_documents
            )
            messages.append(media)
            saved = self.save_file(f"c-{_digest(media['id'])}", filename, data)
            if text and caption is None:
                messages.append(wa.text_message(number, text))
        else:
            messages.append(wa.text_message(number, text))
        self.names[number] = name
        delivery = await sim.receive(*messages, names={number: name})
        for msg in messages:
            content = msg[msg["type"]]
            record: dict[str, Any] = {
                "direction": "customer",
                "type": "message",
                "kind": msg["type"],
                "number": number,
                "wamid": msg["id"],
                "name": name,
                "text": content.get("body" if msg["type"] == "text" else "caption") or "",
                "time": float(msg["timestamp"]),
                "accepted": delivery.ok,
            }
            if msg["type"] != "text" and saved:
                record["file"] = saved
            self.record(record)
        extra = f"[{kind} {saved['name']}, {saved['size']} bytes]" if saved else ""
        answer = {"number": number, "wamids": [m["id"] for m in messages]}
        if not delivery.ok:
            last = delivery.attempts[-1] if delivery.attempts else None
            why = (
                (f"HTTP {last.status} {last.answer}" if last.status else str(last.error))
                if last else "no attempt"
            )  # fmt: skip
            self.say(
                f"WhatsApp: {self.who(number)} wrote, but the bridge did not take the webhook "
                f"({len(delivery.attempts)} attempts, last: {short(why, 120)})"
            )
            return {**answer, "ok": False, "error": f"the bridge did not take the webhook: {why}"}
        self.say(f"WhatsApp: {self.who(number)} wrote: {joined(short(text), extra)}")
        return {**answer, "ok": True}

    # ------------------------------------------------------------------ business -> customer

    async def watch(self) -> None:
        """Verify the bridge's webhook once it is up (as Meta does when the callback URL is
        saved), then log what the business (that is, the bridge) does, as it happens."""
        loop = asyncio.get_running_loop()
        next_verify = 0.0
        while True:
            if not self.verified and loop.time() >= next_verify:
                next_verify = loop.time() + 0.5
                await self.verify()
            self.collect()
            # Every webhook the simulator sends is recorded with its body; keep the list short.
            if len(self.sim.webhook_deliveries) > 1000:
                del self.sim.webhook_deliveries[:-100]
            await asyncio.sleep(0.2)

    async def verify(self) -> None:
        challenge = str(int(time.time() * 1000))
        try:
            status, body = await self.sim.verify_webhook(challenge=challenge)
        except Exception:  # noqa: BLE001 - the bridge is not listening yet
            return
        if status == 200 and body == challenge:
            self.verified = True
            self.say(
                f"WhatsApp: the bridge's webhook {self.sim.webhook_url} is verified "
                "(hub.challenge answered with the right verify token)"
            )

    def collect(self) -> None:
        sim, seen = self.sim, self.seen
        for sent in sim.sent[seen["sent"] :]:
            seen["sent"] += 1
            self.business_message(sent)
            task = asyncio.get_running_loop().create_task(self.phone(sent))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        for receipt in sim.read_receipts[seen["read_receipts"] :]:
            seen["read_receipts"] += 1
            inbound = sim.inbound.get(receipt.message_id)
            if inbound is None:
                continue
            self.record({"type": "read", "number": inbound.wa_id, "target": receipt.message_id,
                         "time": receipt.at})  # fmt: skip
        for rejection in sim.rejected[seen["rejected"] :]:
            seen["rejected"] += 1
            error = rejection.error
            details = (error.get("error_data") or {}).get("details") or error.get("message")
            self.say(
                f"WhatsApp: refused {rejection.method} {rejection.path} from the bridge: "
                f"error {rejection.code}, {short(str(details), 160)}"
            )

    def business_message(self, sent: Any) -> None:
        number = sent.wa_id
        if sent.type == "reaction":
            emoji = sent.content.get("emoji") or ""
            self.record({"type": "reaction", "number": number, "time": sent.at,
                         "target": sent.content.get("message_id"), "emoji": emoji})  # fmt: skip
            shown = f"reacted {emoji}" if emoji else "removed its reaction"
            self.say(f"WhatsApp: the business {shown} in the chat with {self.who(number)}")
            return
        record: dict[str, Any] = {
            "direction": "business",
            "type": "message",
            "kind": sent.type,
            "number": number,
            "wamid": sent.wamid,
            "text": sent.text or "",
            "reply_to": sent.context_id,
            "time": sent.at,
        }
        if sent.template is not None:
            record["template"] = {"name": sent.template.name, "language": sent.template.language}
        if sent.buttons:
            record["buttons"] = [[{"id": i, "title": title} for i, title in sent.buttons]]
        if sent.media is not None:
            name = sent.content.get("filename") or sent.media.filename or f"{sent.type}"
            record["file"] = self.save_file(f"b-{_digest(sent.wamid)}", name, sent.media.data)
        self.record(record)
        if sent.template is not None:
            what = f"sent the template {sent.template.name} ({sent.template.language}) to"
        else:
            what = "answered"
        extra = f"[{sent.type} {record['file']['name']}]" if "file" in record else ""
        shown = joined(short(record["text"]), extra)
        self.say(f"WhatsApp: the business {what} {self.who(number)}: {shown}")

    async def phone(self, sent: Any) -> None:
        """The customer's phone: status webhooks for a business message, as a real one sends
        them (a reaction gets only ``sent``)."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        plan = PHONE_STATUSES[:1] if sent.type == "reaction" else PHONE_STATUSES
        for status, after in plan:
            await asyncio.sleep(max(0.0, start + after - loop.time()))
            deliveries = await self.sim.emit_statuses(sent.wamid, [status])
            if sent.type != "reaction":
                self.record({"type": "status", "number": sent.wa_id, "target": sent.wamid,
                             "status": status, "time": time.time(),
                             "ok": all(d.ok for d in deliveries)})  # fmt: skip

    async def press(self, data: dict[str, Any]) -> tuple[dict[str, Any], int]:
        """The customer taps a reply button of the business's interactive message: its
        ``button_reply`` in a signed webhook, as Meta sends it."""
        wamid, button = str(data.get("wamid") or ""), str(data.get("id") or "")
        shown = next((r for r in self.log if r.get("type") == "message"
                      and r.get("direction") == "business" and r.get("wamid") == wamid),
                     None)  # fmt: skip
        title = next((b["title"] for row in (shown or {}).get("buttons", []) for b in row
                      if b["id"] == button), None)  # fmt: skip
        if shown is None or title is None:
            raise Refused(f"the business's message {wamid} has no button {button!r}")
        number = str(shown["number"])
        try:
            delivery = await self.sim.press_button(wamid, button)
        except (KeyError, ValueError) as e:  # e.g. sent before the simulator restarted
            raise Refused(f"WhatsApp does not know this button any more: {e}") from None
        sent = list(self.wa.iter_messages(delivery.payload))
        self.record({
            "direction": "customer", "type": "message", "kind": "button", "number": number,
            "wamid": str(sent[0]["id"]) if sent else "", "name": self.names.get(number, number),
            "text": title, "reply_to": wamid, "time": time.time(), "accepted": delivery.ok,
        })  # fmt: skip
        if not delivery.ok:
            return {"ok": False, "error": "the bridge did not take the webhook"}, 502
        self.say(f"WhatsApp: {self.who(number)} tapped {title!r}")
        return {"ok": True, "number": number, "title": title}, 200

    # ------------------------------------------------------------------ HTTP

    def render_page(self) -> str:
        templates = "".join(
            f"<li><code>{name}</code> ({language}): {body}</li>"
            for name, language, body in TEMPLATES
        )
        return render(
            PAGE, BUSINESS=WHATSAPP_BUSINESS_NAME, BUSINESS_NUMBER="+" + WHATSAPP_DISPLAY_NUMBER,
            BUSINESS_DIGITS=WHATSAPP_DISPLAY_NUMBER,
            NUMBER=DEFAULT_NUMBER, NAME=DEFAULT_NAME, TEMPLATES=templates,
            ACCOUNT=self.state["whatsapp_account"],
        )  # fmt: skip

    async def api_messages(self, request: Any) -> Any:
        self.collect()
        raw = request.query.get("number", "").strip()
        try:
            number = normalize_number(raw) if raw else None
        except ValueError:
            number = None
        chats: dict[str, dict[str, Any]] = {}
        for r in self.log:
            if r.get("type") == "message":
                chat = chats.setdefault(r["number"], {"number": r["number"], "name": None})
                if r.get("direction") == "customer":
                    chat["name"] = r.get("name")
                chat["time"] = r.get("time")
        return json_answer(
            {
                "business": WHATSAPP_BUSINESS_NAME,
                "verified": self.verified,
                "chats": sorted(chats.values(), key=lambda c: -(c.get("time") or 0)),
                "messages": conversation(number, self.log) if number else [],
            }
        )

    async def api_ready(self, _request: Any) -> Any:
        return page.ready_answer("webhook_verified", self.verified)

    async def send(self, data: dict[str, Any]) -> tuple[dict[str, Any], int]:
        name = str(data.get("name") or "").strip()
        text = str(data.get("text") or "").strip()
        try:
            number = normalize_number(str(data.get("number") or DEFAULT_NUMBER))
        except ValueError as e:
            raise Refused(str(e)) from None
        if number == WHATSAPP_DISPLAY_NUMBER:
            raise Refused("that is the business's own number")
        if not name:
            raise Refused("the name is required")
        file = page.uploaded_file(data.get("file"))
        if file is not None:
            kind = file["kind"] = self.wa.kind_for_mime(file["mimetype"]) or "document"
            size = len(file["data"])
            limit = self.sim.limits.media_bytes(kind, file["data"])
            if size > limit:
                raise Refused(
                    f"WhatsApp carries {kind} files up to {limit / (1 << 20):g} MB "
                    f"(this one: {size / (1 << 20):.1f} MB)"
                )
        if file is None and not text:
            raise Refused("write a text or choose a file")
        if len(text) > TEXT_LIMIT:
            raise Refused(f"a WhatsApp message is at most {TEXT_LIMIT} characters")
        if file is not None and file["kind"] not in NO_CAPTION and len(text) > CAPTION_LIMIT:
            raise Refused(f"a WhatsApp caption is at most {CAPTION_LIMIT} characters")
        result = await self.customer_message(number, name, text, file)
        return result, 200 if result["ok"] else 502


async def serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    state = load_state()
    demo = DemoWhatsApp(state, args)
    sim = demo.sim
    # The simulator opens its own listener on a random port; the demo serves the same Graph API
    # handlers on the fixed port the bridge is configured with, next to its own pages, and
    # tells the simulator so: media download URLs and template paging links point there.
    await sim.start()
    sim.port = state["whatsapp_port"]
    demo.restore()
    max_upload = max(sim.limits.document_bytes + 8 * (1 << 20), (1 << 20) * 160)
    app = web.Application(client_max_size=max_upload)
    demo.add_routes(app, ready=demo.api_ready)
    sim.add_routes(app)
    line = (
        f"WhatsApp simulator listening on {whatsapp_url(state)}: the Cloud API of the business "
        f"number +{WHATSAPP_DISPLAY_NUMBER} ({WHATSAPP_BUSINESS_NAME}) for the bridge, the "
        "customer page for you"
    )
    return await page.serve_simulated(demo, app, state["whatsapp_port"], line)


# --------------------------------------------------------------------------- the CLI


def cmd_send(args: argparse.Namespace) -> int:
    """Ask the running simulator to deliver a customer's message to the business."""
    return page.send_command(
        whatsapp_url(load_state()),
        {"number": args.number, "name": args.name, "text": args.text},
        "the WhatsApp simulator",
        lambda a: (
            f"Sent to {WHATSAPP_BUSINESS_NAME} (+{WHATSAPP_DISPLAY_NUMBER}) as {args.name} "
            f"(+{a['number']}): {', '.join(a['wamids'])}"
        ),
        file=args.file,
    )


def send_arguments(s: argparse.ArgumentParser) -> None:
    s.add_argument("text", nargs="?", default="", help="the message (a caption with --file)")
    s.add_argument(
        "--number", default=DEFAULT_NUMBER,
        help="the customer's phone number in international form (default: %(default)s)",
    )  # fmt: skip
    s.add_argument("--name", default=DEFAULT_NAME, help="the WhatsApp profile name (%(default)s)")
    s.add_argument("--file", type=Path, help="send this file (an image, audio, video, document)")


def main() -> int:
    return page.main(
        "The demo's WhatsApp: the Cloud API simulator and a customer of the business.",
        send=cmd_send,
        send_help="write to the business's number as a WhatsApp customer",
        send_arguments=send_arguments,
        serve=serve,
        serve_help="run the simulator with the customer page",
    )


if __name__ == "__main__":
    sys.exit(main())
