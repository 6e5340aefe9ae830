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
import re
import secrets
import signal
import sys
import time
from pathlib import Path
from typing import Any

from common import (
    DATA,
    IDEMPOTENCY_HEADER,
    LOOPBACK,
    SIGNATURE_HEADER,
    JsonLines,
    bridge_url,
    customer_url,
    load_state,
    post_json,
    sign,
    verify,
)

MESSAGES = DATA / "customer-messages.jsonl"
FILES = DATA / "customer-files"
DEFAULT_CHAT = "alice"
DEFAULT_NAME = "Alice Example"


# --------------------------------------------------------------------------- the store


STORE = JsonLines(MESSAGES)
append, records = STORE.append, STORE.records


def conversation(chat: str | None) -> list[dict[str, Any]]:
    """The messages of ``chat`` (all chats if None) with edits, deletions and reactions
    applied, oldest first."""
    shown: list[dict[str, Any]] = []
    by_id: dict[str, dict[str, Any]] = {}
    for r in records():
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
        append(
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


class CustomerApp:
    def __init__(self, state: dict[str, Any], log_path: Path | None, quiet: bool) -> None:
        self.state = state
        self.log_path = log_path
        self.quiet = quiet
        self.answered: dict[str, str] = {
            r["idempotency_key"]: r["id"] for r in records() if r.get("idempotency_key")
        }
        self._lock = asyncio.Lock()

    def say(self, line: str) -> None:
        if not self.quiet:
            print(line, flush=True)
        if self.log_path:
            with self.log_path.open("a", encoding="utf-8") as f:
                f.write(time.strftime("%Y-%m-%d %H:%M:%S ") + line + "\n")

    async def page(self, _request: Any) -> Any:
        from aiohttp import web

        return web.Response(text=PAGE, content_type="text/html")

    async def api_messages(self, request: Any) -> Any:
        from aiohttp import web

        chat = request.query.get("chat") or None
        return web.json_response(conversation(chat))

    async def api_send(self, request: Any) -> Any:
        from aiohttp import web

        try:
            data = await request.json()
        except ValueError:
            return web.json_response({"error": "send JSON"}, status=400)
        chat = str(data.get("chat") or "").strip()
        name = str(data.get("name") or "").strip()
        text = str(data.get("text") or "").strip()
        if not chat or not name or not text:
            return web.json_response({"error": "name, chat id and text are required"}, status=400)
        status, answer = await asyncio.to_thread(send_to_bridge, self.state, chat, name, text)
        self.say(f"Customer {name} ({chat}) wrote: {text} -> bridge answered {status} {answer}")
        return web.json_response({"status": status, "answer": answer}, status=200)

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
                record["file"] = self._save_file(remote_id, attachment)
            append(record)
            self.answered[key] = remote_id
        self.say(self._describe(record))
        return web.json_response({"id": remote_id})

    def _save_file(self, remote_id: str, attachment: dict[str, Any]) -> dict[str, Any]:
        name = re.sub(r"[^A-Za-z0-9._-]+", "_", str(attachment.get("filename") or "file"))[:80]
        stored = f"{remote_id}-{name}"
        FILES.mkdir(parents=True, exist_ok=True)
        try:
            data = base64.b64decode(attachment.get("data_base64") or "")
        except ValueError:
            data = b""
        (FILES / stored).write_bytes(data)
        return {"name": name, "size": len(data), "url": f"/files/{stored}"}

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

    async def file(self, request: Any) -> Any:
        from aiohttp import web

        name = request.match_info["name"]
        path = FILES / name
        if "/" in name or name.startswith(".") or not path.is_file():
            raise web.HTTPNotFound()
        return web.FileResponse(path)


async def serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    state = load_state()
    app_state = CustomerApp(state, Path(args.log) if args.log else None, args.quiet)
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_get("/", app_state.page)
    app.router.add_get("/api/messages", app_state.api_messages)
    app.router.add_post("/api/send", app_state.api_send)
    app.router.add_post("/inbox", app_state.inbox)
    app.router.add_get("/files/{name}", app_state.file)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, LOOPBACK, state["customer_port"]).start()
    app_state.say(f"Customer app listening on {customer_url(state)} (bridge POSTs to /inbox)")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()
    return 0


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Customer chat (bridge demo)</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
 body { font: 15px/1.4 system-ui, sans-serif; max-width: 46rem; margin: 2rem auto; padding: 0 1rem;
        color: #222; }
 h1 { font-size: 1.3rem; } .hint { color: #666; font-size: .9rem; }
 form { display: grid; grid-template-columns: 8rem 1fr; gap: .5rem; align-items: center;
        background: #f4f6f8; padding: 1rem; border-radius: .5rem; }
 form textarea { height: 4rem; } form button { grid-column: 2; justify-self: start;
        padding: .4rem 1.2rem; }
 #status { grid-column: 2; font-size: .9rem; color: #666; min-height: 1.2em; }
 #log { margin-top: 1.5rem; display: flex; flex-direction: column; gap: .5rem; }
 .msg { padding: .5rem .8rem; border-radius: .6rem; max-width: 80%; white-space: pre-wrap; }
 .customer { align-self: flex-end; background: #d7ecff; }
 .staff { align-self: flex-start; background: #e9f7e4; }
 .meta { font-size: .75rem; color: #666; } .deleted { color: #999; font-style: italic; }
</style></head>
<body>
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
<script>
const $ = id => document.getElementById(id);
function fmt(t) { return new Date(t * 1000).toLocaleTimeString(); }
async function refresh() {
  try {
    const r = await fetch('/api/messages?chat=' + encodeURIComponent($('chat').value.trim()));
    const msgs = await r.json();
    const log = $('log'); log.textContent = '';
    if (!msgs.length) { log.textContent = 'No messages in this chat yet.'; }
    for (const m of msgs) {
      const div = document.createElement('div');
      div.className = 'msg ' + m.direction;
      const meta = document.createElement('div'); meta.className = 'meta';
      meta.textContent = (m.direction === 'staff' ? 'Staff' : m.name) + ' · ' + fmt(m.time)
        + (m.edited ? ' · edited' : '');
      const text = document.createElement('div');
      if (m.deleted) { text.className = 'deleted'; text.textContent = '(deleted)'; }
      else { text.textContent = m.text; }
      div.append(meta, text);
      if (m.file && !m.deleted) {
        const a = document.createElement('a'); a.href = m.file.url;
        a.textContent = '📎 ' + m.file.name + ' (' + m.file.size + ' bytes)';
        div.append(a);
      }
      if (m.reactions.length) {
        const re = document.createElement('div'); re.textContent = m.reactions.join(' ');
        div.append(re);
      }
      log.append(div);
    }
  } catch (e) { $('status').textContent = 'Cannot reach the customer app: ' + e; }
}
$('f').addEventListener('submit', async ev => {
  ev.preventDefault();
  $('status').textContent = 'Sending…';
  const r = await fetch('/api/send', {
    method: 'POST', headers: {'Content-Type': 'application/json'},
    body: JSON.stringify({ name: $('name').value, chat: $('chat').value, text: $('text').value }),
  });
  const res = await r.json();
  if (res.status === 200) {
    $('status').textContent = 'Delivered to the bridge.';
    $('text').value = '';
  } else {
    $('status').textContent = 'Not sent: '
      + (res.error || ('HTTP ' + res.status + ' ' + JSON.stringify(res.answer)));
  }
  refresh();
});
$('chat').addEventListener('change', refresh);
refresh(); setInterval(refresh, 1500);
</script>
</body></html>
"""


def main() -> int:
    parser = argparse.ArgumentParser(description="The demo customer: web app and CLI.")
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("send", help="send a message to the company as a customer")
    s.add_argument("text")
    s.add_argument("--chat", default=DEFAULT_CHAT, help="chat id (default: %(default)s)")
    s.add_argument("--name", default=DEFAULT_NAME, help="customer name (default: %(default)s)")
    w = sub.add_parser("serve", help="run the customer web app")
    w.add_argument("--log", help="also append what happens to this file")
    w.add_argument("--quiet", action="store_true", help="print nothing to the terminal")
    args = parser.parse_args()
    if args.command == "send":
        return cmd_send(args)
    return asyncio.run(serve(args))


if __name__ == "__main__":
    sys.exit(main())
