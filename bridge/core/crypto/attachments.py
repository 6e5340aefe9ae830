"""Encrypted attachments (``EncryptedFile``): files encrypted for Matrix, streamed both ways.

The format is the one every Matrix client uses (the specification's encrypted attachments,
version ``v2``): AES-256 in CTR mode under a fresh random key per file, a 16-byte IV of 8 random
bytes and an 8-byte big-endian block counter starting at zero, the key as a JSON Web Key
(``kty`` oct, ``alg`` A256CTR, ``k`` in unpadded URL-safe base64), and the SHA-256 of the
*ciphertext*; IV and hash in unpadded base64. The ciphertext goes to the media repository as
``application/octet-stream``; key, IV and hash travel inside the encrypted event, so the
homeserver stores only ciphertext.

Both directions go through ``MediaFile``: a file is encrypted or decrypted chunk by chunk as it
is read or as it arrives, never whole in memory. A chunk's cipher and hash work runs on the
event loop only while the chunk is small (``INLINE``, well under a millisecond), a larger
chunk's in a worker thread (the AES and SHA-256 code releases the GIL), as ``MediaFile`` moves
its disk writes there.

Decryption compares the SHA-256 of everything that came with the event's hash at the end and
raises ``AttachmentError`` on a mismatch (the file was altered or truncated); a failed
decryption leaves no file behind. The hash cannot reveal a wrong key (CTR carries no
authentication, and key and hash come in the same event, whose authenticity is the Megolm
layer's business): a wrong key yields bytes of the right length that mean nothing.

``parse_encrypted_file`` reads the ``file`` object of an event's content as hostile input:
fixed-size fields from bounded strings, looked up by name, so the work is bounded whatever is
sent. It accepts only version ``v2``, which the specification requires and which every
maintained client writes (mautrix-go refuses other versions as well). Base64 is accepted in
either alphabet, padded or not; the returned ``EncryptedFile`` holds the canonical forms.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import re
from collections.abc import AsyncIterable, AsyncIterator, Callable
from typing import TYPE_CHECKING, Protocol

from Crypto.Cipher import AES
from Crypto.Util import Counter
from mautrix.types import ContentURI, EncryptedFile, JSONWebKey

from ...connector import PermanentDeliveryError
from ...media import CHUNK, FileTooLarge, MediaFile

if TYPE_CHECKING:
    import aiohttp

INLINE = 64 * 1024
"""A chunk up to this size is encrypted and hashed on the event loop; a larger one in a thread."""

_KEY_BYTES = 32
_IV_BYTES = 16
_HASH_BYTES = 32
_MAX_KEY_OPS = 16
_MXC = re.compile(r"mxc://[A-Za-z0-9.:\-\[\]]{1,255}/[A-Za-z0-9_\-]{1,255}")
_BASE64 = re.compile(r"[A-Za-z0-9+/\-_]+={0,2}")
_URLSAFE = str.maketrans("-_", "+/")


class _Stream(Protocol):
    """A stream cipher (pycryptodome's CTR mode), which the encryption and decryption share."""

    def encrypt(self, data: bytes) -> bytes: ...

    def decrypt(self, data: bytes) -> bytes: ...


class AttachmentError(PermanentDeliveryError, ValueError):
    """An encrypted file that cannot be decrypted: altered, truncated or badly described. A
    staff file that fails so is not delivered, with this as the reason (retrying gets the same
    bytes)."""


# ---------------------------------------------------------------------- encrypting


async def encrypt_media(data: bytes | MediaFile, mimetype: str) -> tuple[MediaFile, EncryptedFile]:
    """``data`` encrypted under a fresh key: the ciphertext as a new ``MediaFile``
    (``application/octet-stream``, to upload) and the ``EncryptedFile`` describing it, its
    ``url`` left empty for the caller to set once uploaded. ``mimetype`` is the plaintext's
    type, which belongs in the event's ``info``, never on the upload; it is not used here.
    The caller closes both files."""
    key, prefix = os.urandom(_KEY_BYTES), os.urandom(8)
    cipher = _cipher(key, prefix + bytes(8))
    sha256 = hashlib.sha256()

    def encrypt(chunk: bytes) -> bytes:
        ciphertext = cipher.encrypt(chunk)
        sha256.update(ciphertext)
        return ciphertext

    source = data.chunks() if isinstance(data, MediaFile) else _slices(data)
    media = await MediaFile.from_chunks(_transformed(source, encrypt), "application/octet-stream")
    return media, EncryptedFile(
        key=JSONWebKey(key=_encode(key, urlsafe=True)),
        iv=_encode(prefix + bytes(8)),
        hashes={"sha256": _encode(sha256.digest())},
        version="v2",
    )


async def _slices(data: bytes) -> AsyncIterator[bytes]:
    view = memoryview(data)
    for start in range(0, len(view), CHUNK):
        yield bytes(view[start : start + CHUNK])


async def _transformed(
    chunks: AsyncIterable[bytes], step: Callable[[bytes], bytes]
) -> AsyncIterator[bytes]:
    """Each chunk through ``step``, in a worker thread when it is large. The chunks are handled
    one at a time and in order, as a stream cipher and a running hash need."""
    async for chunk in chunks:
        yield step(chunk) if len(chunk) <= INLINE else await asyncio.to_thread(step, chunk)


# ---------------------------------------------------------------------- decrypting


async def decrypt_to_media(
    chunks: AsyncIterable[bytes], file: EncryptedFile, mimetype: str, *, limit: int | None = None
) -> MediaFile:
    """The plaintext of the ciphertext ``chunks`` as a ``MediaFile`` of type ``mimetype``,
    decrypted while it is spooled. ``FileTooLarge`` as soon as more than ``limit`` bytes came;
    ``AttachmentError`` if ``file`` cannot describe a file or the ciphertext's hash does not
    match. On any failure nothing is left open."""
    key, iv, expected = _secrets(file)
    cipher = _cipher(key, iv)
    sha256 = hashlib.sha256()

    def decrypt(chunk: bytes) -> bytes:
        sha256.update(chunk)
        return cipher.decrypt(chunk)

    async def checked() -> AsyncIterator[bytes]:
        async for plaintext in _transformed(chunks, decrypt):
            yield plaintext
        if not hmac.compare_digest(sha256.digest(), expected):
            raise AttachmentError("the file's hash does not match: it was altered or truncated")

    # ``from_chunks`` counts the bytes (CTR keeps the length) and closes its spool on failure.
    return await MediaFile.from_chunks(checked(), mimetype, limit=limit)


async def decrypt_response(
    resp: aiohttp.ClientResponse, file: EncryptedFile, mimetype: str, *, limit: int | None = None
) -> MediaFile:
    """The decrypted body of ``resp``, read in chunks (as ``MediaFile.from_response``). A
    ``Content-Length`` over the limit is refused before anything is read."""
    if limit is not None and resp.content_length is not None and resp.content_length > limit:
        raise FileTooLarge(limit, resp.content_length)
    return await decrypt_to_media(resp.content.iter_chunked(CHUNK), file, mimetype, limit=limit)


# ---------------------------------------------------------------------- reading events


def parse_encrypted_file(value: object) -> EncryptedFile | None:
    """The ``file`` object of an event's content as an ``EncryptedFile``, or ``None`` unless it
    describes an uploaded ``v2`` file completely: an ``mxc://`` URL, an A256CTR key usable for
    decryption, a 16-byte IV and the ciphertext's SHA-256."""
    if not isinstance(value, dict) or value.get("v") != "v2":
        return None
    url, jwk, hashes = value.get("url"), value.get("key"), value.get("hashes")
    if not isinstance(url, str) or not _MXC.fullmatch(url):
        return None
    if not isinstance(jwk, dict) or not isinstance(hashes, dict):
        return None
    ops = jwk.get("key_ops")
    if not isinstance(ops, list) or len(ops) > _MAX_KEY_OPS or "decrypt" not in ops:
        return None
    if jwk.get("kty") != "oct" or jwk.get("alg") != "A256CTR":
        return None
    key = _decode(jwk.get("k"), _KEY_BYTES)
    iv = _decode(value.get("iv"), _IV_BYTES)
    digest = _decode(hashes.get("sha256"), _HASH_BYTES)
    if key is None or iv is None or digest is None:
        return None
    return EncryptedFile(
        key=JSONWebKey(key=_encode(key, urlsafe=True), key_ops=["encrypt", "decrypt"]),
        iv=_encode(iv),
        hashes={"sha256": _encode(digest)},
        url=ContentURI(url),
        version="v2",
    )


def _secrets(file: EncryptedFile) -> tuple[bytes, bytes, bytes]:
    """Key, IV and expected hash of ``file``; ``AttachmentError`` if it cannot describe one."""
    if file.version != "v2" or file.key.algorithm != "A256CTR" or file.key.key_type != "oct":
        raise AttachmentError(f"unsupported encrypted file (version {file.version!r})")
    key = _decode(file.key.key, _KEY_BYTES)
    iv = _decode(file.iv, _IV_BYTES)
    digest = _decode((file.hashes or {}).get("sha256"), _HASH_BYTES)
    if key is None or iv is None or digest is None:
        raise AttachmentError("the encrypted file's key, IV or hash is malformed")
    return key, iv, digest


# ---------------------------------------------------------------------- the primitives


def _cipher(key: bytes, iv: bytes) -> _Stream:
    """AES-256-CTR with the IV's low 8 bytes as a 64-bit counter (wrapping as web clients'
    does); a non-zero start is not spec-compliant but some clients send one."""
    counter = Counter.new(64, prefix=iv[:8], initial_value=int.from_bytes(iv[8:], "big"))
    cipher: _Stream = AES.new(key, AES.MODE_CTR, counter=counter)
    return cipher


def _decode(value: object, size: int) -> bytes | None:
    """Exactly ``size`` bytes from base64 (either alphabet, padding optional), else ``None``;
    the length is checked before any decoding."""
    length = (size * 4 + 2) // 3
    if not isinstance(value, str) or not length <= len(value) <= length + 2:
        return None
    unpadded = value.rstrip("=")
    if len(unpadded) != length or not _BASE64.fullmatch(value):
        return None
    unpadded = unpadded.translate(_URLSAFE)
    try:  # ``length`` characters always hold ``size`` bytes
        return base64.b64decode(unpadded + "=" * (-len(unpadded) % 4), validate=True)
    except ValueError:
        return None


def _encode(data: bytes, *, urlsafe: bool = False) -> str:
    encoded = base64.urlsafe_b64encode(data) if urlsafe else base64.b64encode(data)
    return encoded.rstrip(b"=").decode("ascii")
