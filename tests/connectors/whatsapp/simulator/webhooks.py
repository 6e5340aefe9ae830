"""Meta's side towards the bridge: signed webhooks for inbound messages and statuses, and the
verification request."""

from __future__ import annotations

import asyncio
import json
import random
import secrets
from collections.abc import Coroutine, Iterable, Mapping, Sequence
from typing import Any

import aiohttp

from .. import payloads as wa
from ..payloads import Json
from .records import InboundMessage, WebhookAttempt, WebhookDelivery
from .state import SimulatorState

SIGNATURE_HEADER = "X-Hub-Signature-256"


class Webhooks(SimulatorState):
    """Meta towards the bridge: inbound messages and statuses in signed webhooks, retries,
    shuffled delivery, and the verification request."""

    # -- the customer side: inbound webhooks ------------------------------------------------------

    def messages_payload(self, *messages: Json, names: Mapping[str, str] | None = None) -> Json:
        """The webhook for inbound ``messages`` to this business number."""
        return wa.messages_payload(
            messages,
            waba_id=self.waba_id,
            phone_number_id=self.phone_number_id,
            display_phone_number=self.display_phone_number,
            names=names,
        )

    def statuses_payload(self, *statuses: Json) -> Json:
        return wa.envelope(
            waba_id=self.waba_id,
            phone_number_id=self.phone_number_id,
            display_phone_number=self.display_phone_number,
            statuses=statuses,
        )

    def media_message(
        self,
        kind: str,
        from_: str,
        data: bytes,
        mime_type: str,
        *,
        filename: str | None = None,
        **kw: Any,
    ) -> Json:
        """Store ``data`` as a customer's media and build the inbound message that carries it
        (timestamp from the simulator clock unless given)."""
        media = self.add_media(data, mime_type, filename=filename)
        kw.setdefault("timestamp", self.clock.now())
        return wa.media_message(
            kind, from_, media.id, mime_type=mime_type, sha256=media.sha256_b64,
            filename=filename, **kw,
        )  # fmt: skip

    async def receive(
        self, *messages: Json, names: Mapping[str, str] | None = None, **send_kw: Any
    ) -> WebhookDelivery:
        """Deliver inbound ``messages`` (payloads builders) in one signed webhook."""
        return await self.send_webhook(self.messages_payload(*messages, names=names), **send_kw)

    async def press_button(
        self, wamid: str, button_id: str, *, duplicate: bool = False
    ) -> WebhookDelivery:
        """The customer taps the reply button ``button_id`` of the interactive message
        ``wamid`` the business sent: its ``button_reply``, with ``context`` naming that message,
        in a signed webhook. Raises ValueError when the message has no such button."""
        sent = self.sent_message(wamid)
        interactive = sent.body.get("interactive") or {}
        buttons = (interactive.get("action") or {}).get("buttons") or []
        title = next((b["reply"]["title"] for b in buttons if b["reply"]["id"] == button_id), None)
        if sent.type != "interactive" or title is None:
            raise ValueError(f"message {wamid} has no reply button {button_id!r}")
        context = wa.reply_context(self.display_phone_number, wamid)
        press = wa.button_reply_message(
            sent.wa_id, button_id, title, context=context, timestamp=self.clock.now()
        )
        return await self.receive(press, duplicate=duplicate)

    def _register(self, payload: Mapping[str, Any]) -> None:
        """Inbound messages exist on Meta's side once sent, whatever the bridge answers: their
        ids can be marked read and the sender's 24-hour window restarts (at clock time)."""
        now = self.clock.now()
        for msg in wa.iter_messages(payload):
            wamid, sender = msg.get("id"), msg.get("from")
            if isinstance(wamid, str) and isinstance(sender, str):
                self.inbound[wamid] = InboundMessage(wamid, sender, str(msg.get("type")), now)
                self._last_inbound[sender] = max(now, self._last_inbound.get(sender, now))

    # -- webhooks ---------------------------------------------------------------------------------

    async def verify_webhook(
        self,
        *,
        mode: str = "subscribe",
        token: str | None = None,
        challenge: str | None = None,
        url: str | None = None,
    ) -> tuple[int, str]:
        """The verification request Meta makes when the callback URL is set:
        ``GET ?hub.mode=...&hub.challenge=...&hub.verify_token=...``; returns (status, body)."""
        assert self._http is not None
        target = url or self.webhook_url
        if target is None:
            raise RuntimeError("no webhook URL configured")
        params = {
            "hub.mode": mode,
            "hub.challenge": challenge or str(secrets.randbelow(10**9)),
            "hub.verify_token": self.verify_token if token is None else token,
        }
        async with self._http.get(target, params=params) as resp:
            result = (resp.status, await resp.text())
        self.verifications.append((params, *result))
        return result

    def _serialize(self, payload: Mapping[str, Any]) -> bytes:
        # Meta's bodies escape non-ASCII (``\\ud83d\\ude00``): the signature is over these bytes.
        return json.dumps(payload, ensure_ascii=True, separators=(",", ":")).encode()

    async def send_webhook(
        self,
        payload: Mapping[str, Any],
        *,
        bad_signature: bool = False,
        no_signature: bool = False,
        duplicate: bool = False,
        max_attempts: int | None = None,
        url: str | None = None,
    ) -> WebhookDelivery:
        """POST ``payload`` to the webhook, signed with the app secret (or with a wrong one, or
        unsigned); repeat after non-2xx answers up to ``max_attempts`` in all; ``duplicate``
        posts it once more after that. Inbound messages in it are registered first."""
        target = url or self.webhook_url
        if target is None:
            raise RuntimeError("no webhook URL configured")
        self._register(payload)
        body = self._serialize(payload)
        secret = self.app_secret + ("-wrong" if bad_signature else "")
        sig = None if no_signature else wa.signature(body, secret)
        delivery = WebhookDelivery(dict(payload), body, sig, target)
        self.webhook_deliveries.append(delivery)
        attempts = max_attempts or self.webhook_max_attempts
        for n in range(attempts):
            if n:
                await asyncio.sleep(self.webhook_retry_delay)
            attempt = await self._post(target, body, sig)
            delivery.attempts.append(attempt)
            self._notify()
            if attempt.ok:
                break
        if duplicate:
            attempt = await self._post(target, body, sig)
            attempt.duplicate = True
            delivery.attempts.append(attempt)
            self._notify()
        return delivery

    async def _post(self, url: str, body: bytes, sig: str | None) -> WebhookAttempt:
        assert self._http is not None
        headers = {"Content-Type": "application/json", "User-Agent": "facebookexternalua"}
        if sig is not None:
            headers[SIGNATURE_HEADER] = sig
        timeout = aiohttp.ClientTimeout(total=self.webhook_timeout)
        try:
            async with self._http.post(url, data=body, headers=headers, timeout=timeout) as resp:
                return WebhookAttempt(resp.status, answer=await resp.text())
        except (aiohttp.ClientError, TimeoutError) as exc:
            return WebhookAttempt(None, error=f"{type(exc).__name__}: {exc}")

    async def deliver_shuffled(
        self,
        payloads: Iterable[Mapping[str, Any]],
        *,
        seed: int | None = None,
        concurrent: bool = False,
        **send_kw: Any,
    ) -> list[WebhookDelivery]:
        """Deliver ``payloads`` in a shuffled order (delivery is unordered), one after the other
        or all at once; returns the deliveries in the order they were made."""
        items = list(payloads)
        random.Random(seed).shuffle(items)
        if concurrent:
            return list(await asyncio.gather(*(self.send_webhook(p, **send_kw) for p in items)))
        return [await self.send_webhook(p, **send_kw) for p in items]

    async def emit_statuses(
        self,
        wamid: str,
        statuses: Sequence[str] = ("sent", "delivered", "read"),
        *,
        errors: Sequence[Json] | None = None,
        **send_kw: Any,
    ) -> list[WebhookDelivery]:
        """One status webhook per status for a message the bot sent: conversation and pricing
        on sent/delivered/read, ``errors`` (default 131026) on failed."""
        sent = self.sent_message(wamid)
        category = sent.template.category.lower() if sent.template else "service"
        conversation_id = secrets.token_hex(16)
        deliveries = []
        for status in statuses:
            now = self.clock.now()
            if status == "failed":
                entry = wa.status_update(
                    wamid, status, sent.wa_id, timestamp=now,
                    errors=errors or [wa.webhook_error(131026)],
                )  # fmt: skip
            else:
                expires = now + self.limits.service_window if status == "sent" else None
                conv = wa.conversation(
                    conversation_id, origin=category, expiration_timestamp=expires
                )
                entry = wa.status_update(
                    wamid, status, sent.wa_id, timestamp=now, conversation=conv,
                    pricing=wa.pricing(category),
                )  # fmt: skip
            deliveries.append(await self.send_webhook(self.statuses_payload(entry), **send_kw))
        return deliveries

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
