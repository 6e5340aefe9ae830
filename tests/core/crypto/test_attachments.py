"""Encrypted attachments: round trips, interop with mautrix and nio, refusals, hostile input."""

from __future__ import annotations

import asyncio
import base64
import copy
import hashlib
import tempfile
import tracemalloc
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from mautrix.crypto.attachments import decrypt_attachment as mautrix_decrypt
from mautrix.crypto.attachments import encrypt_attachment as mautrix_encrypt
from mautrix.types import EncryptedFile
from nio.crypto.attachments import decrypt_attachment as nio_decrypt
from nio.crypto.attachments import encrypt_attachment as nio_encrypt

from bridge.core.crypto import attachments
from bridge.core.crypto.attachments import (
    INLINE,
    AttachmentError,
    decrypt_response,
    decrypt_to_media,
    encrypt_media,
    parse_encrypted_file,
)
from bridge.media import CHUNK, IN_MEMORY, FileTooLarge, MediaFile

URL = "mxc://example.org/AbC_12-x"
PLAIN = bytes(range(256)) * 1000  # 256 000 bytes: several chunks, each large enough for a thread


def _pieces(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    async def produce() -> AsyncIterator[bytes]:
        for start in range(0, len(data), size):
            yield data[start : start + size]

    return produce()


async def _plaintext(chunks: AsyncIterator[bytes], file: EncryptedFile, **kw: Any) -> bytes:
    with await decrypt_to_media(chunks, file, "image/png", **kw) as media:
        assert media.mimetype == "image/png"
        return await media.read()


@pytest.fixture
def spools(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every spool ``MediaFile`` opens during the test, to check that a failure closed it."""
    opened: list[Any] = []
    real = tempfile.SpooledTemporaryFile

    def recording(*args: Any, **kwargs: Any) -> Any:
        opened.append(real(*args, **kwargs))
        return opened[-1]

    monkeypatch.setattr("bridge.media.tempfile.SpooledTemporaryFile", recording)
    return opened


# ---------------------------------------------------------------------- round trips


@pytest.mark.parametrize("data", [b"", b"hello", PLAIN], ids=["empty", "short", "chunks"])
async def test_bytes_round_trip(data: bytes) -> None:
    ciphertext, file = await encrypt_media(data, "image/png")
    with ciphertext:
        assert ciphertext.mimetype == "application/octet-stream"
        assert ciphertext.size == len(data)
        raw = await ciphertext.read()
        assert raw != data or not data
        assert file.url is None and file.version == "v2"
        assert file.key.algorithm == "A256CTR" and "decrypt" in file.key.key_ops
        assert base64.b64decode(file.iv + "==")[8:] == bytes(8)  # the counter starts at zero
        assert file.hashes["sha256"] == _b64(hashlib.sha256(raw).digest())
        assert await _plaintext(ciphertext.chunks(), file) == data


async def test_a_large_file_is_encrypted_and_decrypted_in_chunks_never_whole_in_memory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    total = 8 * IN_MEMORY + 123
    steps: list[str] = []
    real_to_thread = asyncio.to_thread

    async def to_thread(func: Callable[..., Any], *args: Any) -> Any:
        if func.__name__ in ("encrypt", "decrypt"):
            steps.append(f"{func.__name__} {len(args[0])}")
        return await real_to_thread(func, *args)

    monkeypatch.setattr(attachments.asyncio, "to_thread", to_thread)
    data = bytes(range(251)) * (total // 251 + 1)
    source = await MediaFile.from_chunks(_pieces(data[:total], CHUNK), "video/mp4")
    tracemalloc.start()
    try:
        with source:
            ciphertext, file = await encrypt_media(source, "video/mp4")
        with ciphertext:
            plain = await decrypt_to_media(ciphertext.chunks(), file, "video/mp4")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    with plain:
        assert ciphertext.size == plain.size == total
        assert plain._spool._rolled  # type: ignore[attr-defined] - on disk
        assert hashlib.sha256(await plain.read()).digest() == hashlib.sha256(data[:total]).digest()
    # The in-memory start of each spool and a few chunks, not the file.
    assert peak < total / 2
    # Read, encrypted and hashed a chunk at a time, each in a worker thread (but the last
    # 123 bytes, too few to leave the event loop for).
    per_direction = total // CHUNK
    assert steps == [f"encrypt {CHUNK}"] * per_direction + [f"decrypt {CHUNK}"] * per_direction


async def test_small_chunks_stay_on_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    real_to_thread = asyncio.to_thread

    async def to_thread(func: Callable[..., Any], *args: Any) -> Any:
        assert func.__name__ not in ("encrypt", "decrypt"), "a small chunk went to a thread"
        return await real_to_thread(func, *args)

    monkeypatch.setattr(attachments.asyncio, "to_thread", to_thread)
    ciphertext, file = await encrypt_media(b"x" * INLINE, "text/plain")
    with ciphertext:
        assert await _plaintext(_pieces(await ciphertext.read(), 1000), file) == b"x" * INLINE


# ---------------------------------------------------------------------- interop


async def test_files_encrypted_by_mautrix_decrypt_here() -> None:
    raw, info = mautrix_encrypt(PLAIN)
    content = info.serialize()
    content["url"] = URL
    file = parse_encrypted_file(content)
    assert file is not None and file.url == URL
    assert await _plaintext(_pieces(raw), file) == PLAIN


async def test_files_encrypted_here_decrypt_with_mautrix() -> None:
    ciphertext, file = await encrypt_media(PLAIN, "image/png")
    with ciphertext:
        raw = await ciphertext.read()
    assert mautrix_decrypt(raw, file.key.key, file.hashes["sha256"], file.iv) == PLAIN
    assert EncryptedFile.deserialize(file.serialize()) == file


async def test_files_encrypted_by_nio_decrypt_here() -> None:
    raw, keys = nio_encrypt(PLAIN)
    file = parse_encrypted_file({**keys, "url": URL})
    assert file is not None
    assert await _plaintext(_pieces(raw), file) == PLAIN


async def test_files_encrypted_here_decrypt_with_nio() -> None:
    ciphertext, file = await encrypt_media(PLAIN, "image/png")
    with ciphertext:
        raw = await ciphertext.read()
    content = {**file.serialize(), "url": URL}
    assert parse_encrypted_file(content) == EncryptedFile.deserialize(content)
    assert nio_decrypt(raw, content["key"]["k"], content["hashes"]["sha256"], content["iv"]) == (
        PLAIN
    )


# ---------------------------------------------------------------------- refusals


async def _encrypted(data: bytes = PLAIN) -> tuple[bytes, EncryptedFile]:
    ciphertext, file = await encrypt_media(data, "image/png")
    with ciphertext:
        return await ciphertext.read(), file


@pytest.mark.parametrize(
    "alter",
    [
        lambda raw: raw[:-1],
        lambda raw: raw[: len(raw) // 2],
        lambda raw: b"",
        lambda raw: raw + b"\0",
        lambda raw: raw[:1000] + bytes([raw[1000] ^ 1]) + raw[1001:],
    ],
    ids=["last-byte-missing", "half", "nothing", "a-byte-more", "a-bit-flipped"],
)
async def test_an_altered_or_truncated_file_is_refused(
    alter: Callable[[bytes], bytes], spools: list[Any]
) -> None:
    raw, file = await _encrypted()
    spools.clear()
    with pytest.raises(AttachmentError, match="hash does not match: it was altered or truncated"):
        await decrypt_to_media(_pieces(alter(raw)), file, "image/png")
    assert len(spools) == 1 and spools[0].closed


async def test_a_wrong_key_gives_meaningless_bytes_which_the_hash_cannot_tell() -> None:
    raw, file = await _encrypted()
    _, other = await _encrypted()
    wrong = copy.deepcopy(file)
    wrong.key.key = other.key.key
    got = await _plaintext(_pieces(raw), wrong)
    assert len(got) == len(PLAIN) and got != PLAIN


@pytest.mark.parametrize(
    "spoil",
    [
        lambda f: setattr(f.key, "key", f.key.key[:-2]),
        lambda f: setattr(f, "iv", "AAAA"),
        lambda f: f.hashes.clear(),
        lambda f: setattr(f, "version", "v1"),
        lambda f: setattr(f.key, "algorithm", "A128CTR"),
    ],
    ids=["short-key", "short-iv", "no-hash", "v1", "other-algorithm"],
)
async def test_a_malformed_description_is_refused_before_reading(
    spoil: Callable[[EncryptedFile], None],
) -> None:
    raw, file = await _encrypted()
    spoil(file)
    read: list[bytes] = []

    async def source() -> AsyncIterator[bytes]:
        read.append(raw)
        yield raw

    with pytest.raises(AttachmentError):
        await decrypt_to_media(source(), file, "image/png")
    assert read == []


async def test_more_than_the_limit_is_refused_as_it_arrives(spools: list[Any]) -> None:
    raw, file = await _encrypted()
    produced = 0

    async def source() -> AsyncIterator[bytes]:
        nonlocal produced
        for start in range(0, len(raw), 10_000):
            produced += 1
            yield raw[start : start + 10_000]

    spools.clear()
    with pytest.raises(FileTooLarge) as e:
        await decrypt_to_media(source(), file, "image/png", limit=45_000)
    assert e.value.limit == 45_000
    assert produced == 5  # stopped at the first chunk past the limit
    assert len(spools) == 1 and spools[0].closed
    assert await _plaintext(_pieces(raw), file, limit=len(raw)) == PLAIN  # the limit is inclusive


# ---------------------------------------------------------------------- from a response


async def _serve(body: bytes, *, length: bool) -> TestClient[web.Request, web.Application]:
    async def handler(request: web.Request) -> web.StreamResponse:
        if length:
            return web.Response(body=body, content_type="application/octet-stream")
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for start in range(0, len(body), 50_000):
            await resp.write(body[start : start + 50_000])
        return resp

    app = web.Application()
    app.router.add_get("/file", handler)
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


@pytest.mark.parametrize("length", [True, False], ids=["content-length", "chunked"])
async def test_a_response_is_decrypted_as_it_is_read(length: bool) -> None:
    raw, file = await _encrypted()
    client = await _serve(raw, length=length)
    try:
        async with client.get("/file") as resp:
            with await decrypt_response(resp, file, "image/png", limit=len(raw)) as media:
                assert media.mimetype == "image/png"
                assert await media.read() == PLAIN
        async with client.get("/file") as resp:
            with pytest.raises(FileTooLarge) as e:
                await decrypt_response(resp, file, "image/png", limit=len(raw) - 1)
        # A declared length over the limit is refused before reading; else as it arrives.
        assert e.value.size == (len(raw) if length else None)
    finally:
        await client.close()


# ---------------------------------------------------------------------- hostile input


def _b64(data: bytes, *, urlsafe: bool = False) -> str:
    encode = base64.urlsafe_b64encode if urlsafe else base64.b64encode
    return encode(data).rstrip(b"=").decode()


def _valid() -> dict[str, Any]:
    return {
        "url": URL,
        "key": {
            "kty": "oct",
            "alg": "A256CTR",
            "ext": True,
            "key_ops": ["encrypt", "decrypt"],
            "k": _b64(b"\xfb" * 32, urlsafe=True),
        },
        "iv": _b64(b"\xfe" * 8 + bytes(8)),
        "hashes": {"sha256": _b64(b"\xff" * 32)},
        "v": "v2",
    }


def test_a_valid_file_object_is_read_into_its_canonical_form() -> None:
    file = parse_encrypted_file(_valid())
    assert file is not None
    assert file.serialize() == _valid()
    # Padding and the other base64 alphabet are tolerated and normalised; other hashes dropped.
    tolerant = _valid()
    tolerant["key"]["k"] = base64.b64encode(b"\xfb" * 32).decode()  # padded, standard alphabet
    tolerant["iv"] = base64.urlsafe_b64encode(b"\xfe" * 8 + bytes(8)).decode()
    tolerant["hashes"]["md5"] = "x"
    tolerant["key"]["key_ops"] = ["decrypt"]
    assert parse_encrypted_file(tolerant) == file


HUGE = "A" * 10_000_000


def _without(*path: str) -> Callable[[dict[str, Any]], None]:
    def drop(value: dict[str, Any]) -> None:
        for key in path[:-1]:
            value = value[key]
        del value[path[-1]]

    return drop


def _set(value: object, *path: str) -> Callable[[dict[str, Any]], None]:
    def put(content: dict[str, Any]) -> None:
        for key in path[:-1]:
            content = content[key]
        content[path[-1]] = value

    return put


HOSTILE: dict[str, Callable[[dict[str, Any]], None]] = {
    **{f"no-{'.'.join(p)}": _without(*p) for p in [("url",), ("key",), ("iv",), ("hashes",)]},
    **{f"no-{'.'.join(p)}": _without(*p) for p in [("v",), ("key", "k"), ("key", "kty")]},
    **{f"no-{'.'.join(p)}": _without(*p) for p in [("key", "alg"), ("key", "key_ops")]},
    "no-sha256": _without("hashes", "sha256"),
    "v1": _set("v1", "v"),
    "v-number": _set(2, "v"),
    "url-http": _set("https://example.org/a", "url"),
    "url-path": _set("mxc://example.org/a/../b", "url"),
    "url-no-media": _set("mxc://example.org/", "url"),
    "url-number": _set(1, "url"),
    "url-huge": _set("mxc://example.org/" + HUGE, "url"),
    "key-list": _set([], "key"),
    "kty-rsa": _set("RSA", "key", "kty"),
    "alg-a128": _set("A128CTR", "key", "alg"),
    "encrypt-only": _set(["encrypt"], "key", "key_ops"),
    "key-ops-string": _set("decrypt", "key", "key_ops"),
    "key-ops-huge": _set(["x"] * 1_000_000 + ["decrypt"], "key", "key_ops"),
    "k-short": _set(_b64(bytes(31), urlsafe=True), "key", "k"),
    "k-long": _set(_b64(bytes(33), urlsafe=True), "key", "k"),
    "k-huge": _set(HUGE, "key", "k"),
    "k-bad-char": _set("*" + _b64(bytes(32))[1:], "key", "k"),
    "k-non-ascii": _set("é" + _b64(bytes(32))[1:], "key", "k"),
    "k-inner-padding": _set("A=" + _b64(bytes(32))[2:], "key", "k"),
    "k-bytes": _set(bytes(43), "key", "k"),
    "iv-short": _set(_b64(bytes(15)), "iv"),
    "iv-null": _set(None, "iv"),
    "iv-padding-only": _set("=" * 24, "iv"),
    "hashes-list": _set([], "hashes"),
    "sha256-short": _set(_b64(bytes(31)), "hashes", "sha256"),
    "sha256-huge": _set(HUGE, "hashes", "sha256"),
    "sha256-dict": _set({}, "hashes", "sha256"),
}


@pytest.mark.parametrize("spoil", HOSTILE.values(), ids=HOSTILE.keys())
def test_a_hostile_file_object_is_none(spoil: Callable[[dict[str, Any]], None]) -> None:
    content = _valid()
    spoil(content)
    assert parse_encrypted_file(content) is None


@pytest.mark.parametrize("value", [None, "file", 3, [], [_valid()], HUGE])
def test_a_file_object_that_is_no_object_is_none(value: object) -> None:
    assert parse_encrypted_file(value) is None
