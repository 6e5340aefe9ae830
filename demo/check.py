"""``scripts/demo.sh --check``: drives the running demo end to end, prints PASS or FAIL.

1. a customer writes through the customer CLI (``demo/customer.py send``) in a new chat;
2. the staff user logs in with matrix-nio and waits for the bridge's invite to the new
   portal room, and joins it;
3. the customer's message is visible in that room;
4. the staff user answers;
5. the customer app received the answer (signed POST to /inbox).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from common import customer_url, hs_url, load_state
from nio import (
    AsyncClient,
    AsyncClientConfig,
    JoinResponse,
    LoginResponse,
    RoomMessagesResponse,
    RoomSendResponse,
    SyncResponse,
)

STEP_TIMEOUT = 90.0
TOTAL_TIMEOUT = 300.0


class CheckFailed(Exception):
    pass


class Steps:
    def __init__(self) -> None:
        self.started = time.monotonic()
        self.step_started = self.started

    def begin(self, text: str) -> None:
        self.step_started = time.monotonic()
        print(f"  - {text} ...", end="", flush=True)

    def ok(self, detail: str = "") -> None:
        took = time.monotonic() - self.step_started
        print(f" ok ({took:.1f} s){': ' + detail if detail else ''}", flush=True)


async def _wait(what: str, probe: Any, timeout: float = STEP_TIMEOUT) -> Any:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while True:
        result = await probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise CheckFailed(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(0.3)


def _body(event: dict[str, Any]) -> str:
    content = event.get("content") or {}
    body = content.get("body")
    return body if isinstance(body, str) else ""


async def run(state: dict[str, Any]) -> None:
    steps = Steps()
    nonce = secrets.token_hex(3)
    chat = f"check-{time.strftime('%Y%m%d-%H%M%S')}-{nonce}"
    customer_text = f"Hello from the demo check ({nonce})"
    reply_text = f"Thanks, we are on it ({nonce})"
    staff_user = state["staff_user"]

    client = AsyncClient(
        hs_url(state),
        staff_user,
        config=AsyncClientConfig(
            encryption_enabled=False, store_sync_tokens=False, request_timeout=30
        ),
    )
    try:
        steps.begin(f"log in to {hs_url(state)} as {staff_user}")
        resp = await client.login(state["staff_password"], device_name="demo check")
        if not isinstance(resp, LoginResponse):
            raise CheckFailed(f"login failed: {resp}")
        first = await client.sync(timeout=0, full_state=False)
        if not isinstance(first, SyncResponse):
            raise CheckFailed(f"sync failed: {first}")
        known_rooms = set(first.rooms.join) | set(first.rooms.invite)
        steps.ok()

        steps.begin(f"customer CLI sends {customer_text!r} in chat {chat!r}")
        result = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, str(Path(__file__).with_name("customer.py")), "send",
             customer_text, "--chat", chat, "--name", "Check Customer"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        if result.returncode != 0:
            raise CheckFailed(f"customer.py send failed: {result.stdout}{result.stderr}".strip())
        steps.ok(result.stdout.strip())

        steps.begin("wait for the bridge's invite to the new portal room")
        invited: list[str] = []

        async def invite() -> str | None:
            resp = await client.sync(timeout=3000)
            if not isinstance(resp, SyncResponse):
                return None
            for room_id, info in resp.rooms.invite.items():
                # The portal's topic and alias name the chat; other invites are not ours.
                state = json.dumps([getattr(e, "source", None) for e in info.invite_state])
                if room_id not in known_rooms and chat in state:
                    invited.append(room_id)
            return invited[0] if invited else None

        room_id = await _wait("an invite to the portal room", invite)
        steps.ok(room_id)

        steps.begin("join the portal room")
        joined = await client.join(room_id)
        if not isinstance(joined, JoinResponse):
            raise CheckFailed(f"join failed: {joined}")
        steps.ok()

        steps.begin("see the customer's message in the room")

        async def customer_message() -> dict[str, Any] | None:
            resp = await client.room_messages(room_id, limit=50)
            if not isinstance(resp, RoomMessagesResponse):
                return None
            for event in resp.chunk:
                if _body(event.source) == customer_text:
                    return event.source
            return None

        seen = await _wait("the customer's message in the portal room", customer_message)
        steps.ok(f"from {seen.get('sender')}")

        steps.begin(f"staff answers {reply_text!r}")
        sent = await client.room_send(
            room_id, "m.room.message", {"msgtype": "m.text", "body": reply_text}
        )
        if not isinstance(sent, RoomSendResponse):
            raise CheckFailed(f"sending the answer failed: {sent}")
        steps.ok(sent.event_id)

        steps.begin("the customer app receives the answer at /inbox")
        url = f"{customer_url(state)}/api/messages?chat={chat}"

        async def delivered() -> dict[str, Any] | None:
            def fetch() -> list[dict[str, Any]]:
                with urllib.request.urlopen(url, timeout=10) as r:
                    return list(json.loads(r.read()))

            for msg in await asyncio.to_thread(fetch):
                if msg.get("direction") == "staff" and reply_text in str(msg.get("text")):
                    return msg
            return None

        got = await _wait("the answer at the customer app", delivered)
        steps.ok(repr(got.get("text")))
        print(f"  all steps took {time.monotonic() - steps.started:.1f} s")
    finally:
        try:
            await client.logout()
        except Exception:
            pass
        await client.close()


def main() -> int:
    state = load_state()
    print("Checking the demo end to end:")
    try:
        asyncio.run(asyncio.wait_for(run(state), TOTAL_TIMEOUT))
    except TimeoutError:
        print(f" FAILED\n  the check did not finish within {TOTAL_TIMEOUT:.0f} s")
        print("FAIL (logs: demo-data/*.log)")
        return 1
    except CheckFailed as e:
        print(f" FAILED\n  {e}")
        print("FAIL (logs: demo-data/*.log)")
        return 1
    except Exception as e:  # noqa: BLE001 - report anything as a failed check
        print(f" FAILED\n  {type(e).__name__}: {e}")
        print("FAIL (logs: demo-data/*.log)")
        return 1
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
