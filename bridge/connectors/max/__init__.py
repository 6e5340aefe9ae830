"""The MAX Bot API connector (``type: max``): one MAX bot per channel account.

What the code relies on of the documented Bot API (dev.max.ru/docs-api):

* Bots exist only for verified Russian businesses; the token comes from the business
  platform and goes in the ``Authorization: <token>`` header on every request (tokens in the
  query string are refused). The API base is configurable: it has moved hosts
  (``botapi.max.ru``, ``platform-api.max.ru``, now ``platform-api2.max.ru``).
* ``GET /me`` gives the bot's ``user_id`` and ``username``.
* Receiving: ``POST /subscriptions`` with ``url``, ``update_types`` and ``secret``, which
  comes back in ``X-Max-Bot-Api-Secret`` on every delivery (checked in constant time); HTTPS
  with a publicly trusted certificate only; a 200 answer acknowledges. Or long polling
  ``GET /updates?marker=…&timeout=…&types=…`` (``{"updates": [...], "marker": n}``),
  meant for development and off while a webhook is set; the marker is saved with the
  account's data only after every update of its batch was recorded.
* Updates carry ``update_type`` and ``timestamp`` (milliseconds); see ``handle_remote`` for
  the types bridged and their fields (``message.body.mid``, ``text``, ``markup``,
  ``attachments``, ``link``; ``message.sender``, ``message.recipient.chat_id`` and
  ``chat_type``).
* Sending: ``POST /messages?chat_id=…`` with ``text``, ``format`` (``html``),
  ``attachments`` (``{"type": "image", "payload": {"token": …}}``, ``inline_keyboard``)
  and ``link: {"type": "reply", "mid": …}``; the answer's ``message.body.mid`` is the id.
  ``PUT``/``DELETE /messages?message_id=…`` edit and delete. ``POST /answers?callback_id=…``
  answers a button press. ``POST /chats/{chat_id}/actions`` with ``typing_on`` or
  ``mark_seen`` shows the bot typing and marks the chat read.
* Media: ``POST /uploads?type=image|video|audio|file`` returns a one-time ``url`` (and for
  video and audio the ``token``); the file goes there as multipart ``data``, the answer has the
  token (``photos`` for images). A send right after may be answered
  ``attachment.not.ready``: retried shortly.
* Limits: text up to 4000 characters; about 2 messages a second per chat and 30 requests a
  second overall, spaced by the connector; 429 answers are retried in order by the core.
  Errors are JSON ``{"code": …, "message": …}``.
"""

from .config import MaxConfig
from .connector import MaxConnector

__all__ = ["MaxConfig", "MaxConnector"]
