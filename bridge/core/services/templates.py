"""Sending a pre-approved template to a conversation, a new one when it has no room yet: what
the ``template`` command and the provisioning API share."""

from __future__ import annotations

from ...connector import Template
from ...db import Portal
from ...seams import ConversationRef
from ...types import AccountID, RemoteChatID
from .conversations import ConversationServices
from .errors import ServiceError
from .messages import MessageServices, Origin


class TemplateServices(ConversationServices, MessageServices):
    async def template_to(
        self,
        account: str,
        chat: RemoteChatID | None,
        address: str | None,
        template: Template,
        params: list[str],
        origin: Origin,
    ) -> tuple[ConversationRef, bool]:
        """Send ``template`` to ``chat`` (a new conversation with it when it has no room), or
        to the chat of ``address``: the ``template`` command and the provisioning API.
        Returns the conversation and whether ``origin.sender`` may see it."""
        self.check(origin.sender, account)
        if len(params) != template.parameters:
            raise ServiceError(
                f"{template.name} ({template.language}) takes {template.parameters} parameter(s),"
                f" not {len(params)}: {template.text}"
            )
        portal = await Portal.get(account, chat) if chat is not None else None
        visible = True
        if portal is None or not portal.room_id:
            if chat is None:
                assert address is not None
                portal, visible = await self.start_by_address(origin.sender, account, address)
            else:
                portal, visible = await self.start_conversation(
                    origin.sender, account, chat, address or chat
                )
        ref = ConversationRef(AccountID(account), RemoteChatID(portal.chat), portal.room_id)
        origin = Origin(origin.room_id, origin.event_id, origin.sender, visible)
        await self.send_template(ref, template, params, origin)
        return ref, visible
