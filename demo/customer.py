"""The demo's "customer": a tiny in-house system on the far side of the webhook connector.

    python demo/customer.py serve                 # the web app (started by scripts/demo.sh)
    python demo/customer.py send "Hello"          # write to the company as a customer
    python demo/customer.py send "Hi" --chat bob --name "Bob Example"

``send`` POSTs a signed event to the bridge (``/connectors/demo/events``). The web app serves
a page to do the same from a browser, and receives the bridge's signed POSTs at ``/inbox``
(what staff write in Matrix: messages, edits, deletions, reactions), checks their signature,
answers ``{"id": ...}``, and shows them. Both keep the conversation in
``demo-data/customer-messages.jsonl``, which the page reads.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import secrets
import sys
import time
from typing import Any

import page
from common import (
    DATA,
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    JsonLines,
    bridge_url,
    customer_url,
    load_state,
    post_json,
    safe_name,
    sign,
    verify,
)
from page import CustomerPage, Refused, html, json_answer, start_site, until_stopped

MESSAGES = DATA / "customer-messages.jsonl"
FILES = DATA / "customer-files"
DEFAULT_CHAT = "alice"
DEFAULT_NAME = "Alice Example"


# --------------------------------------------------------------------------- the store


STORE = JsonLines(MESSAGES)


def conversation(chat: str | None) -> list[dict[str, Any]]:
    """The messages of ``chat`` (all chats if None) with edits, deletions and reactions
    applied, oldest first."""
    shown: list[dict[str, Any]] = []
    by_id: dict[str, dict[str, Any]] = {}
    for r in STORE.records():
        if chat is not None and r.get("chat_id") != chat:
            continue
        kind = r.get("type")
        if kind == "message":
            msg = dict(r, reactions=[], edited=False, deleted=False)
            shown.append(msg)
            by_id[str(r.get("id"))] = msg
            continue
        target = by_id.get(str(r.get("target")))
        if target is None:
            continue
        if kind == "edit":
            target.update(text=r.get("text", ""), edited=True)
        elif kind == "delete":
            target.update(deleted=True)
        elif kind == "reaction":
            target["reactions"].append(r.get("emoji", ""))
        elif kind == "reaction_remove" and r.get("emoji") in target["reactions"]:
            target["reactions"].remove(r.get("emoji"))
    return shown


# --------------------------------------------------------------------------- customer -> bridge


def send_to_bridge(state: dict[str, Any], chat: str, name: str, text: str) -> tuple[int, Any]:
    """POST one signed customer message to the bridge; returns (HTTP status, answer)."""
    message_id = f"c-{time.time_ns()}-{secrets.token_hex(3)}"
    payload = {
        "type": "message",
        "id": message_id,
        "chat": {"id": chat, "name": name},
        "sender": {"id": chat, "name": name},
        "text": text,
        "timestamp": time.time(),
    }
    body = json.dumps(payload).encode()
    url = f"{bridge_url(state)}/connectors/{state['account']}/events"
    headers = {SIGNATURE_HEADER: sign(state["webhook_secret"], body)}
    status, answer = post_json(url, body, "the bridge", headers, timeout=30)
    if status == 200:
        STORE.append(
            {
                "direction": "customer",
                "type": "message",
                "id": message_id,
                "chat_id": chat,
                "name": name,
                "text": text,
                "time": payload["timestamp"],
            }
        )
    return status, answer


def cmd_send(args: argparse.Namespace) -> int:
    state = load_state()
    status, answer = send_to_bridge(state, args.chat, args.name, args.text)
    if status == 200:
        print(f"Sent to the bridge as {args.name} (chat {args.chat!r}): {answer}")
        return 0
    print(f"The bridge did not take the message: HTTP {status} {answer}", file=sys.stderr)
    return 1


# --------------------------------------------------------------------------- the web app


class CustomerApp(CustomerPage):
    def __init__(self, state: dict[str, Any], args: argparse.Namespace) -> None:
        super().__init__(state, args, STORE, FILES)
        self.answered: dict[str, str] = {
            r["idempotency_key"]: r["id"] for r in self.log if r.get("idempotency_key")
        }
        self._lock = asyncio.Lock()

    def render_page(self) -> str:
        return PAGE

    async def api_messages(self, request: Any) -> Any:
        chat = request.query.get("chat") or None
        return json_answer(conversation(chat))

    async def send(self, data: dict[str, Any]) -> tuple[dict[str, Any], int]:
        chat = str(data.get("chat") or "").strip()
        name = str(data.get("name") or "").strip()
        text = str(data.get("text") or "").strip()
        if not chat or not name or not text:
            raise Refused("name, chat id and text are required")
        status, answer = await asyncio.to_thread(send_to_bridge, self.state, chat, name, text)
        self.say(f"Customer {name} ({chat}) wrote: {text} -> bridge answered {status} {answer}")
        return {"status": status, "answer": answer}, 200

    async def inbox(self, request: Any) -> Any:
        """The bridge's outbound POSTs: what staff did in Matrix."""
        from aiohttp import web

        body = await request.read()
        if not verify(self.state["webhook_secret"], body, request.headers.get(SIGNATURE_HEADER)):
            self.say("Refused a POST to /inbox with a wrong or missing signature")
            return web.json_response({"error": "bad signature"}, status=401)
        try:
            event = json.loads(body)
        except ValueError:
            return web.json_response({"error": "not JSON"}, status=400)
        if not isinstance(event, dict) or not isinstance(event.get("chat_id"), str):
            return web.json_response({"error": "not an event"}, status=400)
        key = request.headers.get(IDEMPOTENCY_HEADER) or str(event.get("id"))
        async with self._lock:
            if key in self.answered:
                # A repeat (the bridge retried after a lost answer): same answer, no new record.
                return web.json_response({"id": self.answered[key]})
            remote_id = f"s-{secrets.token_hex(6)}"
            record = {
                "direction": "staff",
                "type": event.get("type"),
                "id": remote_id,
                "idempotency_key": key,
                "chat_id": event["chat_id"],
                "name": (event.get("sender") or {}).get("name") or "staff",
                "text": event.get("text") or "",
                "target": event.get("target"),
                "emoji": event.get("emoji"),
                "time": event.get("timestamp") or time.time(),
            }
            attachment = event.get("attachment")
            if isinstance(attachment, dict):
                record["file"] = self._save_attachment(remote_id, attachment)
            self.record(record)
            self.answered[key] = remote_id
        self.say(self._describe(record))
        return web.json_response({"id": remote_id})

    def _save_attachment(self, remote_id: str, attachment: dict[str, Any]) -> dict[str, Any]:
        try:
            data = base64.b64decode(attachment.get("data_base64") or "")
        except ValueError:
            data = b""
        return self.save_file(
            remote_id, safe_name(str(attachment.get("filename") or "file")), data
        )

    @staticmethod
    def _describe(r: dict[str, Any]) -> str:
        chat = r["chat_id"]
        kind = r["type"]
        if kind == "message":
            file = r.get("file")
            extra = f" [file {file['name']}, {file['size']} bytes]" if file else ""
            return f"Staff replied (chat {chat}): {r['text']}{extra}"
        if kind == "edit":
            return f"Staff edited a message (chat {chat}): {r['text']}"
        if kind == "delete":
            return f"Staff deleted a message (chat {chat})"
        if kind == "reaction":
            return f"Staff reacted {r['emoji']} (chat {chat})"
        if kind == "reaction_remove":
            return f"Staff took back the reaction {r['emoji']} (chat {chat})"
        return f"Staff sent a {kind!r} event (chat {chat})"


async def serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    state = load_state()
    app_state = CustomerApp(state, args)
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app_state.add_routes(app, ready=None)
    app.router.add_post("/inbox", app_state.inbox)
    runner = await start_site(app, state["customer_port"])
    app_state.say(f"Customer app listening on {customer_url(state)} (bridge POSTs to /inbox)")
    await until_stopped()
    await runner.cleanup()
    return 0


PAGE = html(
    "Customer chat (bridge demo)",
    "#f4f6f8",
    """\
 #log { margin-top: 1.5rem; display: flex; flex-direction: column; gap: .5rem; }
 .msg { padding: .5rem .8rem; border-radius: .6rem; max-width: 80%; white-space: pre-wrap; }
 .customer { align-self: flex-end; background: #d7ecff; }
 .staff { align-self: flex-start; background: #e9f7e4; }
 .meta { font-size: .75rem; color: #666; } .deleted { color: #999; font-style: italic; }
""",
    """\
<h1>Customer chat &mdash; the far side of the bridge</h1>
<p class="hint">This page plays an in-house system (a web shop, a CRM) connected to the bridge
through the webhook connector. Messages sent here reach the company's staff in Matrix;
their answers appear below (the page refreshes itself).</p>
<form id="f">
 <label for="name">Customer name</label><input id="name" value="Alice Example" required>
 <label for="chat">Chat id</label><input id="chat" value="alice" required>
 <label for="text">Message</label><textarea id="text" required></textarea>
 <button>Send</button><div id="status"></div>
</form>
<div id="log"></div>
""",
    """\
async function refresh() {
  try {
    const r = await fetch('/api/messages?chat=' + encodeURIComponent($('chat').value.trim()));
    const msgs = await r.json();
    const log = $('log'); log.textContent = '';
    if (!msgs.length) { log.textContent = 'No messages in this chat yet.'; }
    for (const m of msgs) {
      const bubble = div('msg ' + m.direction);
      bubble.append(div('meta', (m.direction === 'staff' ? 'Staff' : m.name) + ' · '
        + fmt(m.time) + (m.edited ? ' · edited' : '')), textOrDeleted(m));
      if (m.file && !m.deleted) { bubble.append(fileLink(m.file, false)); }
      if (m.reactions.length) { bubble.append(div('', m.reactions.join(' '))); }
      log.append(bubble);
    }
  } catch (e) { $('status').textContent = 'Cannot reach the customer app: ' + e; }
}
onSubmit(async () => {
  $('status').textContent = 'Sending…';
  const res = await postJson('/api/send',
    { name: $('name').value, chat: $('chat').value, text: $('text').value });
  if (res.status === 200) {
    $('status').textContent = 'Delivered to the bridge.';
    $('text').value = '';
  } else {
    $('status').textContent = 'Not sent: '
      + (res.error || ('HTTP ' + res.status + ' ' + JSON.stringify(res.answer)));
  }
});
poll(1500, 'chat');
""",
)


def main() -> int:
    return page.main(
        "The demo customer: web app and CLI.",
        send=cmd_send,
        send_help="send a message to the company as a customer",
        send_arguments=send_arguments,
        serve=serve,
        serve_help="run the customer web app",
    )


def send_arguments(s: argparse.ArgumentParser) -> None:
    s.add_argument("text")
    s.add_argument("--chat", default=DEFAULT_CHAT, help="chat id (default: %(default)s)")
    s.add_argument("--name", default=DEFAULT_NAME, help="customer name (default: %(default)s)")


if __name__ == "__main__":
    sys.exit(main())
