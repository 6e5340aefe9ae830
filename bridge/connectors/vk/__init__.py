"""The VK community messages connector (VK API, Callback API and Bots Long Poll API).

What the code relies on of VK's documented API (dev.vk.com):

* Every method is ``POST <base>/method/<name>`` with ``access_token`` (a community token with
  the messages, photos and docs rights) and ``v``; the answer is ``{"response": ...}`` or
  ``{"error": {"error_code", "error_msg"}}``. A community token may make 20 calls a second;
  error 6 ("too many requests per second") is retried with backoff, 9 is flood control,
  1/10 are VK's own failures, 5 is a refused token; 901 ("can't send messages for users
  without permission": a community may write only to people who wrote first or allowed its
  messages), 900, 902 are permanent.
* The Callback API posts JSON events ``{"type", "object", "group_id", "event_id", "secret"}``;
  ``confirmation`` is answered with the community's confirmation code, every other event with
  the text ``ok`` and HTTP 200 (anything else makes VK retry, with ``X-Retry-Counter``, and
  repeated failures pause the server). The Bots Long Poll API gives the same events:
  ``groups.getLongPollServer`` returns ``server``, ``key`` and ``ts``; ``<server>?act=a_check&
  key=&ts=&wait=`` answers ``{"ts", "updates"}`` or ``{"failed": 1|2|3}``.
* Events bridged: ``message_new`` (``object.message`` with ``peer_id``, ``from_id``,
  ``conversation_message_id``, ``text``, ``attachments``, ``reply_message``, ``ref``),
  ``message_edit``, ``message_event`` (a callback button pressed: ``user_id``, ``peer_id``,
  ``event_id``, ``payload``, ``conversation_message_id``; answered with
  ``messages.sendMessageEventAnswer``), ``message_typing_state``,
  ``message_allow``/``message_deny``. Group chats have ``peer_id`` 2000000000 + chat number.
* ``messages.send`` with ``peer_ids`` (answers ``[{peer_id, conversation_message_id}]``),
  ``random_id`` (VK drops a repeat with the same value from the same sender: the bridge
  derives it from the Matrix event), ``message`` (up to 4096 characters), ``attachment``,
  ``forward`` (``is_reply``) for replies and ``keyboard`` (inline, callback buttons: labels
  up to 40 characters, payloads up to 255, at most 6 rows); ``messages.edit`` and
  ``messages.delete`` with ``peer_id`` and ``conversation_message_id``/``cmids``.
* Uploads: ``photos.getMessagesUploadServer`` -> POST ``photo`` -> ``photos.saveMessagesPhoto``;
  ``docs.getMessagesUploadServer`` -> POST ``file`` -> ``docs.save``.
"""

from .config import VKConfig
from .connector import VKConnector

__all__ = ["VKConfig", "VKConnector"]
