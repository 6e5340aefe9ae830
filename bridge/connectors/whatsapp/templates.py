"""Message templates: the approved list from the Graph API (cached), and sending one."""

from __future__ import annotations

import re
import time
from typing import Any

from ...connector import PermanentDeliveryError, Template
from ...events import SentMessage
from ...types import MessageID, RemoteChatID
from .client import GraphClient

PLACEHOLDER = re.compile(r"\{\{(\d+)\}\}")
PHONE = re.compile(r"^\+?[0-9][0-9 ()./-]{5,24}$")


class Templates:
    def __init__(self, client: GraphClient, ttl: float) -> None:
        self.client = client
        self.ttl = ttl
        self._cache: tuple[float, list[Template]] | None = None

    async def fetch(self) -> list[Template]:
        if self._cache and time.monotonic() - self._cache[0] < self.ttl:
            return self._cache[1]
        templates: list[Template] = []
        path = f"{self.client.config.business_account_id}/message_templates"
        params: dict[str, str] = {"limit": "100"}
        for _ in range(50):  # at most 5,000 templates
            page = await self.client.request("GET", path, params=params)
            for item in page.get("data") or []:
                template = _template(item)
                if template is not None:
                    templates.append(template)
            after = ((page.get("paging") or {}).get("cursors") or {}).get("after")
            if not after or not (page.get("paging") or {}).get("next"):
                break
            params = {"limit": "100", "after": after}
        self._cache = (time.monotonic(), templates)
        return templates

    async def send(self, chat: RemoteChatID, template: Template, params: list[str]) -> SentMessage:
        body: dict[str, Any] = {
            "type": "template",
            "template": {"name": template.name, "language": {"code": template.language}},
        }
        if params:
            body["template"]["components"] = [
                {"type": "body", "parameters": [{"type": "text", "text": p} for p in params]}
            ]
        answer = await self.client.send(chat, body)
        messages = answer.get("messages") or []
        wamid = messages[0].get("id") if messages and isinstance(messages[0], dict) else None
        if not isinstance(wamid, str):
            raise PermanentDeliveryError("WhatsApp accepted the template but returned no id")
        return SentMessage(message_id=MessageID(wamid), timestamp=time.time())


def chat_for_address(address: str) -> RemoteChatID:
    """A phone number in international form (``+49 151 …`` or ``0049 151 …``) → the wa_id
    (digits only, starting with the country code, which never starts with 0)."""
    text = address.strip()
    if not PHONE.match(text):
        raise ValueError(
            f"{address!r} is not a phone number; write it in international form,"
            " e.g. +491701234567"
        )
    digits = re.sub(r"\D", "", text)
    if text.startswith("00"):
        digits = digits[2:]
    elif not text.startswith("+"):
        raise ValueError(
            f"{address!r} is not a phone number in international form (+<country><number>)"
        )
    if digits.startswith("0"):
        raise ValueError(
            f"{address!r} is not a phone number in international form (+<country><number>)"
        )
    if len(digits) < 7 or len(digits) > 15:
        raise ValueError(f"{address!r} does not have 7 to 15 digits")
    return RemoteChatID(digits)


def _template(item: Any) -> Template | None:
    if not isinstance(item, dict) or item.get("status") != "APPROVED":
        return None
    body = ""
    for component in item.get("components") or []:
        if isinstance(component, dict) and component.get("type") == "BODY":
            body = str(component.get("text") or "")
    numbers = {int(n) for n in PLACEHOLDER.findall(body)}
    name, language = item.get("name"), item.get("language")
    if not isinstance(name, str) or not isinstance(language, str):
        return None
    return Template(
        name=name,
        language=language,
        text=body,
        parameters=max(numbers) if numbers else 0,
        category=str(item.get("category") or ""),
    )
