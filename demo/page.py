"""What the demo's customer pages share.

Each customer script (``customer.py`` for the webhook, ``telegram_customer.py``,
``whatsapp_customer.py``, ``vk_customer.py``, ``email_customer.py``) serves a small web page
where a person plays a customer of one channel, and has a ``send`` command doing the same from
a shell. They differ in what a customer's message is (a signed POST, a Bot API update, a signed
Meta webhook, a Callback API event, a mail in a mailbox) and in how a conversation looks; the
rest is here:

- the HTML shell of a page: its head, the styles of the form, and the script helpers
  (``$``, ``fmt``, ``postJson``, ``sendForm``, ``poll``, the parts of a chat bubble);
- ``CustomerPage``, the base of each page's server: terminal lines, the conversation log, the
  files exchanged, the ``/api/send`` request checked before the channel sees it, the routes;
- starting the site and running until Ctrl-C (for a simulated channel, with its simulator);
- the command line: ``send`` (asking the running page to deliver) and ``serve``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import json
import signal
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from common import LOOPBACK, JsonLines, file_payload, post_json, print_send_result, safe_name

# --------------------------------------------------------------------------- the HTML shell


STYLE = """\
 body { font: 15px/1.4 system-ui, sans-serif; max-width: 46rem; margin: 2rem auto; padding: 0 1rem;
        color: #222; }
 h1 { font-size: 1.3rem; } .hint { color: #666; font-size: .9rem; }
 form { display: grid; grid-template-columns: 8rem 1fr; gap: .5rem; align-items: center;
        background: @FORM_BACKGROUND@; padding: 1rem; border-radius: .5rem; }
 form textarea { height: 4rem; } form button { grid-column: 2; justify-self: start;
        padding: .4rem 1.2rem; }
 #status { grid-column: 2; font-size: .9rem; color: #666; min-height: 1.2em; }
 .buttons { margin-top: .4rem; display: flex; flex-direction: column; gap: .3rem; }
 .button-row { display: flex; gap: .3rem; } .button-row button { flex: 1; padding: .3rem .6rem;
        border: 1px solid #bbb; border-radius: .4rem; background: #fff; cursor: pointer; }
"""
"""The page and its form (``<form id="f">``, a ``<div id="status">`` after the button)."""

SCRIPT = """\
const $ = id => document.getElementById(id);
function fmt(t) { return new Date(t * 1000).toLocaleTimeString(); }
async function postJson(url, body) {
  const r = await fetch(url, {
    method: 'POST', headers: {'Content-Type': 'application/json'}, body: JSON.stringify(body),
  });
  return r.json();
}
function readFile(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result.split(',', 2)[1] || '');
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}
// The form's file (<input id="file">, if the page has one) added to `body` as /api/send takes it.
async function withFile(body) {
  const file = $('file') && $('file').files[0];
  if (file) {
    body.file = { name: file.name, mimetype: file.type || 'application/octet-stream',
                  data_base64: await readFile(file) };
  }
  return body;
}
// POST `body` to /api/send; on {ok: true} show delivered(answer) and empty the form.
async function sendForm(body, delivered) {
  $('status').textContent = 'Sending…';
  try {
    const res = await postJson('/api/send', await withFile(body));
    if (res.ok) {
      $('status').textContent = delivered(res);
      $('text').value = ''; if ($('file')) { $('file').value = ''; }
    } else {
      $('status').textContent = 'Not sent: ' + res.error;
    }
  } catch (e) { $('status').textContent = 'Not sent: ' + e; }
}
// Run send() when the form is submitted, then show the conversation again.
function onSubmit(send) {
  $('f').addEventListener('submit', async ev => { ev.preventDefault(); await send(); refresh(); });
}
// Show the conversation now, every `ms` milliseconds, and when one of `inputs` changes.
function poll(ms, ...inputs) {
  for (const id of inputs) { $(id).addEventListener('change', refresh); }
  refresh(); setInterval(refresh, ms);
}
// The parts of a chat bubble.
function div(className, text) {
  const d = document.createElement('div'); d.className = className;
  if (text !== undefined) { d.textContent = text; }
  return d;
}
function textOrDeleted(m) { return m.deleted ? div('deleted', '(deleted)') : div('', m.text); }
// The buttons under a company's message (`buttons`: rows of {id, title}); a press POSTs
// `press(button)` to /api/press and shows the conversation again.
function buttonRows(buttons, press) {
  const box = div('buttons');
  for (const row of buttons || []) {
    const line = div('button-row');
    for (const b of row) {
      const el = document.createElement('button'); el.type = 'button'; el.textContent = b.title;
      el.onclick = async () => {
        try {
          const res = await postJson('/api/press', press(b));
          $('status').textContent = res.ok ? 'Pressed "' + b.title + '".'
                                           : 'Not pressed: ' + res.error;
        } catch (e) { $('status').textContent = 'Not pressed: ' + e; }
        refresh();
      };
      line.append(el);
    }
    box.append(line);
  }
  return box;
}
function fileLink(file, newTab) {
  const a = document.createElement('a'); a.href = file.url;
  if (newTab) { a.target = '_blank'; }
  a.textContent = '📎 ' + file.name + ' (' + file.size + ' bytes)';
  return a;
}
// A chat with the company (`messages`, oldest first, as a simulated channel's /api/messages
// gives them) in #log. `o.id`: a message's id field (what `reply_to` names); `o.company`: the
// direction of the company's messages, `o.name` its name; `o.press(m, button)`: the
// /api/press body of a button under `m`; `o.extra(m, bubble)`, if given, adds a channel's own
// parts before the buttons.
function showChat(messages, o) {
  const log = $('log'); log.textContent = '';
  if (!messages.length) { log.textContent = 'No messages in this chat yet.'; }
  const byId = {};
  for (const m of messages) { byId[m[o.id]] = m; }
  for (const m of messages) {
    const bubble = div('msg ' + m.direction);
    bubble.append(div('meta', (m.direction === o.company ? o.name : m.name) + ' · '
      + fmt(m.time) + (m.edited ? ' · edited' : '')));
    const quoted = m.reply_to && byId[m.reply_to];
    if (quoted && !m.deleted) {
      bubble.append(div('quote',
        quoted.deleted ? '(deleted)' : (quoted.text || (quoted.file || {}).name)));
    }
    bubble.append(textOrDeleted(m));
    if (m.file && !m.deleted) { bubble.append(fileLink(m.file, true)); }
    if (o.extra) { o.extra(m, bubble); }
    if ((m.buttons || []).length && !m.deleted) {
      bubble.append(buttonRows(m.buttons, b => o.press(m, b)));
    }
    if (m.pressed) { bubble.append(div('meta', 'You pressed "' + m.pressed + '"')); }
    if (m.direction !== o.company && m.accepted === false) {
      bubble.append(div('failed', '⚠ the bridge did not take it'));
    }
    log.append(bubble);
  }
}
"""
"""Script helpers for every page; each page defines ``refresh()`` (show the conversation)."""


def html(title: str, form_background: str, style: str, body: str, script: str) -> str:
    """A customer page: the shared head, styles and script helpers around the page's own."""
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">\n'
        f"<title>{title}</title>\n"
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n<style>\n'
        + STYLE.replace("@FORM_BACKGROUND@", form_background)
        + style
        + "</style></head>\n<body>\n"
        + body
        + "<script>\n"
        + SCRIPT
        + script
        + "</script>\n</body></html>\n"
    )


def render(page: str, **values: str) -> str:
    """``page`` with each ``@KEY@`` replaced by its value."""
    for key, value in values.items():
        page = page.replace(f"@{key}@", value)
    return page


# --------------------------------------------------------------------------- the server


class Refused(Exception):
    """An ``/api/send`` request the page turns down (HTTP 400, the message as the error)."""


def json_answer(obj: Any, status: int = 200) -> Any:
    """A JSON response that keeps non-ASCII text (Cyrillic, emoji) readable."""
    from aiohttp import web

    return web.json_response(obj, status=status, dumps=lambda o: json.dumps(o, ensure_ascii=False))


def ready_answer(key: str, ready: bool) -> Any:
    """``/api/ready``: 200 once the bridge is connected, 503 before (scripts/demo.sh waits)."""
    from aiohttp import web

    return web.json_response({key: ready}, status=200 if ready else 503)


def uploaded_file(raw: Any) -> dict[str, Any] | None:
    """The ``file`` of an ``/api/send`` request (name, mimetype, data_base64) as ``name``,
    ``mimetype`` and ``data`` (bytes); None when there is none."""
    if not raw:
        return None
    if not isinstance(raw, dict):
        raise Refused("file must be an object: name, mimetype, data_base64")
    try:
        content = base64.b64decode(str(raw.get("data_base64") or ""), validate=True)
    except (ValueError, binascii.Error):
        raise Refused("file.data_base64 is not base64") from None
    if not content:
        raise Refused("the file is empty")
    return {
        "name": str(raw.get("name") or "file").strip() or "file",
        "mimetype": str(raw.get("mimetype") or "") or "application/octet-stream",
        "data": content,
    }


class CustomerPage:
    """The server of a customer page. A channel's subclass renders the page (``render_page``),
    answers ``/api/messages`` and delivers what ``/api/send`` asks for (``send``)."""

    def __init__(
        self, state: dict[str, Any], args: argparse.Namespace, store: JsonLines, files: Path | None
    ) -> None:
        self.state = state
        self.log_path = Path(args.log) if args.log else None
        self.quiet = args.quiet
        self.store = store
        self.files = files
        self.log = store.records()

    # ------------------------------------------------------------------ output

    def say(self, line: str) -> None:
        """A line for the terminal (unless quiet) and the log file."""
        if not self.quiet:
            print(line, flush=True)
        if self.log_path:
            with self.log_path.open("a", encoding="utf-8") as f:
                f.write(time.strftime("%Y-%m-%d %H:%M:%S ") + line + "\n")

    def record(self, record: dict[str, Any]) -> None:
        """Add ``record`` to the conversation log, in memory and on disk."""
        self.log.append(record)
        self.store.append(record)

    def save_file(self, prefix: str, name: str, data: bytes) -> dict[str, Any]:
        """Keep an exchanged file for the page; returns its name, size and URL there."""
        assert self.files is not None
        stored = f"{prefix}-{safe_name(name)}"
        self.files.mkdir(parents=True, exist_ok=True)
        (self.files / stored).write_bytes(data)
        return {"name": name, "size": len(data), "url": f"/files/{stored}"}

    # ------------------------------------------------------------------ HTTP

    def render_page(self) -> str:
        raise NotImplementedError

    async def send(self, data: dict[str, Any]) -> tuple[dict[str, Any], int]:
        """Deliver the customer's message of an ``/api/send`` request: (answer, HTTP status).
        Raises ``Refused`` for a request that cannot be delivered."""
        raise NotImplementedError

    async def api_messages(self, request: Any) -> Any:
        raise NotImplementedError

    async def page(self, _request: Any) -> Any:
        from aiohttp import web

        return web.Response(text=self.render_page(), content_type="text/html")

    async def press(self, data: dict[str, Any]) -> tuple[dict[str, Any], int]:
        """Press a button under a message of the company (``/api/press``): (answer, HTTP
        status). Raises ``Refused`` when there is no such button."""
        raise Refused("this channel has no buttons")

    async def api_send(self, request: Any) -> Any:
        return await _json_call(request, self.send)

    async def api_press(self, request: Any) -> Any:
        return await _json_call(request, self.press)

    async def file(self, request: Any) -> Any:
        from aiohttp import web

        assert self.files is not None
        name = request.match_info["name"]
        path = self.files / name
        if "/" in name or name.startswith(".") or not path.is_file():
            raise web.HTTPNotFound()
        return web.FileResponse(path)

    def add_routes(
        self, app: Any, ready: Callable[[Any], Coroutine[Any, Any, Any]] | None
    ) -> None:
        """The page, its API (``/api/ready`` with ``ready``) and the files exchanged."""
        app.router.add_get("/", self.page)
        app.router.add_get("/api/messages", self.api_messages)
        if ready is not None:
            app.router.add_get("/api/ready", ready)
        app.router.add_post("/api/send", self.api_send)
        app.router.add_post("/api/press", self.api_press)
        if self.files is not None:
            app.router.add_get("/files/{name}", self.file)


async def _json_call(
    request: Any, handle: Callable[[dict[str, Any]], Coroutine[Any, Any, tuple[Any, int]]]
) -> Any:
    """Answer a JSON object request with ``handle``'s answer; 400 for a ``Refused`` one."""
    from aiohttp import web

    try:
        data = await request.json()
    except ValueError:
        data = None
    if not isinstance(data, dict):
        return web.json_response({"ok": False, "error": "send a JSON object"}, status=400)
    try:
        answer, status = await handle(data)
    except Refused as e:
        return web.json_response({"ok": False, "error": str(e)}, status=400)
    return web.json_response(answer, status=status)


async def start_site(app: Any, port: int, **options: Any) -> Any:
    """Serve ``app`` on the loopback ``port``; returns the runner (``await runner.cleanup()``)."""
    from aiohttp import web

    runner = web.AppRunner(app, access_log=None, **options)
    await runner.setup()
    await web.TCPSite(runner, LOOPBACK, port).start()
    return runner


async def until_stopped(watch: Coroutine[Any, Any, None] | None = None) -> None:
    """Run ``watch`` (a page's look at its channel) until SIGINT or SIGTERM."""
    watcher = asyncio.create_task(watch) if watch is not None else None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    if watcher is not None:
        watcher.cancel()


async def serve_simulated(demo: Any, app: Any, port: int, line: str) -> int:
    """Serve ``app`` (a simulated channel's API next to ``demo``'s page) on the loopback
    ``port``, say ``line`` and run ``demo.watch()`` until SIGINT or SIGTERM; then cancel
    ``demo.tasks`` (if it has any), take in what the simulator did last (``demo.collect()``) and
    stop ``demo.sim``."""
    runner = await start_site(app, port, handler_cancellation=True, shutdown_timeout=1.0)
    demo.say(line)
    await until_stopped(demo.watch())
    for task in list(getattr(demo, "tasks", ())):
        task.cancel()
    demo.collect()
    await demo.sim.stop()
    await runner.cleanup()
    return 0


# --------------------------------------------------------------------------- the CLI


def send_to_page(
    url: str, body: dict[str, Any], what: str, file: Path | None = None, timeout: float = 60
) -> tuple[int, Any]:
    """Ask the running page at ``url`` (its ``/api/send``) to deliver a customer's message."""
    if file is not None:
        body = {**body, "file": file_payload(file)}
    return post_json(f"{url}/api/send", json.dumps(body).encode(), what, timeout=timeout)


def send_command(
    url: str,
    body: dict[str, Any],
    what: str,
    success: Callable[[dict[str, Any]], str],
    file: Path | None = None,
    timeout: float = 60,
) -> int:
    """A ``send`` command: ask the running page at ``url`` to deliver ``body`` (and ``file``),
    then print ``success(answer)`` or what went wrong; returns the exit status."""
    if file is not None and not file.is_file():
        print(f"{file} is not a file", file=sys.stderr)
        return 1
    status, answer = send_to_page(url, body, what, file, timeout)
    return print_send_result(status, answer, success)


def main(
    description: str,
    *,
    send: Callable[[argparse.Namespace], int],
    send_help: str,
    send_arguments: Callable[[argparse.ArgumentParser], None],
    serve: Callable[[argparse.Namespace], Coroutine[Any, Any, int]],
    serve_help: str,
) -> int:
    """A customer script's command line: ``send`` (with ``send_arguments``) and ``serve``."""
    parser = argparse.ArgumentParser(description=description)
    sub = parser.add_subparsers(dest="command", required=True)
    send_arguments(sub.add_parser("send", help=send_help))
    w = sub.add_parser("serve", help=serve_help)
    w.add_argument("--log", help="also append what happens to this file")
    w.add_argument("--quiet", action="store_true", help="print nothing to the terminal")
    args = parser.parse_args()
    if args.command == "send":
        return send(args)
    return asyncio.run(serve(args))
