"""Transfer encodings undone chunk by chunk give what the stdlib parser gives for the whole."""

from __future__ import annotations

import base64
import quopri
import random

import pytest

from bridge.connectors.email.transfer import Decoder


def _feed(encoding: str, data: bytes, seed: int) -> bytes:
    rng = random.Random(seed)
    decoder = Decoder(encoding)
    out, offset = [], 0
    while offset < len(data):
        size = rng.randint(1, 97)
        out.append(decoder.feed(data[offset : offset + size]))
        offset += size
    return b"".join([*out, decoder.end()])


@pytest.mark.parametrize("seed", range(5))
def test_base64_in_any_chunks(seed: int) -> None:
    data = random.Random(seed).randbytes(5000 + seed)
    assert _feed("base64", base64.encodebytes(data), seed) == data


def test_base64_without_padding_or_with_junk() -> None:
    assert _feed("base64", b"aGVsbG8", 1) == b"hello"
    assert _feed("base64", b"aGV*sb\r\n G8=\r\n", 2) == b"hello"


@pytest.mark.parametrize("seed", range(5))
def test_quoted_printable_in_any_chunks(seed: int) -> None:
    rng = random.Random(seed)
    data = bytes(rng.choice(b"ab =\t\xe9\n.") for _ in range(5000))
    encoded = quopri.encodestring(data)
    assert _feed("quoted-printable", encoded, seed) == quopri.decodestring(encoded) == data


def test_identity_and_unknown() -> None:
    assert _feed("8bit", b"as it is\r\n", 3) == b"as it is\r\n"
    with pytest.raises(ValueError):
        Decoder("x-uuencode")
