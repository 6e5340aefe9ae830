"""Bot API methods on files: the send* media methods and getFile."""

from __future__ import annotations

import copy
import mimetypes

from .. import updates as tg
from ..updates import Json
from .compose import Composer
from .files import _DEFAULT_MIME
from .params import _Params
from .records import ApiError, SentMessage, StoredFile, UploadedFile, bad_request

MEDIA_METHODS = {
    "sendPhoto": "photo", "sendDocument": "document", "sendAudio": "audio", "sendVoice": "voice",
    "sendVideo": "video", "sendVideoNote": "video_note", "sendSticker": "sticker",
    "sendAnimation": "animation",
}  # fmt: skip


class MediaMethods(Composer):
    """The send* media methods (upload or file id, then the message) and getFile."""

    def _upload(self, kind: str, p: _Params) -> tuple[StoredFile, UploadedFile | None]:
        source = p.get_file(kind)
        if source is None:
            raise bad_request(f"there is no {kind} in the request")
        if isinstance(source, str):
            stored = self._files.get(source)
            if stored is None:
                raise bad_request("wrong file identifier/HTTP URL specified")
            return stored, None
        size = len(source.data)
        if size > self.limits.upload_max:
            raise ApiError(413, "Request Entity Too Large")
        if size == 0:
            raise bad_request("file must be non-empty")
        if kind == "photo" and size > self.limits.photo_max:
            raise bad_request(
                f"file of size {size} bytes is too big for a photo; the maximum size is "
                f"{self.limits.photo_max} bytes"
            )
        mime = mimetypes.guess_type(source.filename)[0]
        if mime is None and source.content_type != "application/octet-stream":
            mime = source.content_type
        if kind in ("document", "audio", "video", "animation"):
            mime = mime or "application/octet-stream"
        else:
            mime = _DEFAULT_MIME.get(kind, mime)
        stored = self.add_file(source.data, kind=kind, file_name=source.filename, mime_type=mime)
        return stored, source

    def _media_content(self, kind: str, stored: StoredFile, p: _Params) -> Json:
        ref = stored.ref()
        name = stored.file_name
        if kind == "photo":
            return {"photo": [tg.photo_size(ref, stored.width or 800, stored.height or 600)]}
        if kind == "document":
            return {"document": tg.document(ref, file_name=name, mime_type=stored.mime_type)}
        if kind == "audio":
            return {
                "audio": tg.audio(
                    ref,
                    duration=p.get_int("duration", 0) or 0,
                    performer=p.get_str("performer"),
                    title=p.get_str("title"),
                    file_name=name,
                    mime_type=stored.mime_type,
                )
            }
        if kind == "voice":
            duration = p.get_int("duration", 0) or 0
            return {"voice": tg.voice(ref, duration=duration, mime_type=stored.mime_type or "")}
        if kind in ("video", "animation"):
            content = tg.video(
                ref,
                width=p.get_int("width", 0) or 0,
                height=p.get_int("height", 0) or 0,
                duration=p.get_int("duration", 0) or 0,
                file_name=name,
                mime_type=stored.mime_type,
            )
            if kind == "animation":
                return {"animation": content, "document": tg.document(ref, file_name=name)}
            return {"video": content}
        if kind == "video_note":
            length = p.get_int("length", 240) or 240
            return {
                "video_note": tg.video_note(
                    ref, length=length, duration=p.get_int("duration") or 0
                )
            }
        lower = (name or "").lower()
        return {
            "sticker": tg.sticker(
                ref,
                emoji=p.get_str("emoji"),
                is_animated=lower.endswith(".tgs"),
                is_video=lower.endswith(".webm"),
            )
        }

    async def _send_media(self, method: str, p: _Params) -> Json:
        kind = MEDIA_METHODS[method]
        chat, bc = self._target(p)
        raw = p.get_str("caption") or ""
        parse_mode = p.get_str("parse_mode")
        caption: str = ""
        entities: list[Json] = []
        if kind not in ("sticker", "video_note"):
            caption, entities = self._format(
                raw, parse_mode, p.get_json("caption_entities"), caption=True
            )
        stored, upload = self._upload(kind, p)
        content = self._media_content(kind, stored, p)
        if caption:
            content["caption"] = caption
            if entities:
                content["caption_entities"] = entities
        msg, reply = self._post_message(method, p, chat, bc, **content)
        self.sent.append(
            SentMessage(
                method,
                int(chat["id"]),
                msg["message_id"],
                raw or None,
                parse_mode,
                caption or None,
                entities,
                p.snapshot(),
                copy.deepcopy(msg),
                reply["message_id"] if reply else None,
                bc or None,
                upload,
                stored.file_id,
            )
        )
        return msg

    async def _get_file(self, p: _Params) -> Json:
        file_id = p.get_str("file_id")
        if file_id is None:
            raise bad_request("file_id not specified")
        stored = self._files.get(file_id)
        if stored is None:
            raise bad_request("invalid file_id")
        if stored.file_size > self.limits.download_max:
            raise bad_request("file is too big")
        return {**stored.ref(), "file_path": stored.file_path}
