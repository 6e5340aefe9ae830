"""Splitting long text to WhatsApp's length limit without breaking markup, words or emoji."""

from __future__ import annotations

import unicodedata
from bisect import bisect_right

from .capabilities import TEXT_LIMIT


def _code_regions(text: str) -> list[tuple[int, int]]:
    """The spans of ```blocks```, pairing the fences in order."""
    fences: list[int] = []
    position = text.find("```")
    while position != -1:
        fences.append(position)
        position = text.find("```", position + 3)
    return [(fences[i], fences[i + 1] + 3) for i in range(0, len(fences) - 1, 2)]


def _inside(regions: list[tuple[int, int]], starts: list[int], position: int) -> bool:
    index = bisect_right(starts, position) - 1
    return index >= 0 and regions[index][0] < position < regions[index][1]


def _joins(text: str, position: int) -> bool:
    """Whether cutting before ``text[position]`` would split a character or an emoji."""
    before, after = text[position - 1], text[position]
    if "\ud800" <= before <= "\udbff" and "\udc00" <= after <= "\udfff":
        return True
    code = ord(after)
    return (
        unicodedata.combining(after) != 0
        or unicodedata.category(after) in ("Mn", "Mc", "Me")
        or after == "\u200d"
        or before == "\u200d"
        or 0xFE00 <= code <= 0xFE0F
        or 0x1F3FB <= code <= 0x1F3FF
        or 0xE0020 <= code <= 0xE007F
        or (_regional(after) and _regional(before) and _regional_run(text, position) % 2 == 1)
    )


def _regional(ch: str) -> bool:
    return 0x1F1E6 <= ord(ch) <= 0x1F1FF


def _regional_run(text: str, position: int) -> int:
    """How many regional indicators (flag halves) come right before ``position``."""
    count = 0
    while position - count > 0 and _regional(text[position - count - 1]):
        count += 1
    return count


def _cut(
    text: str, start: int, end: int, regions: list[tuple[int, int]], starts: list[int]
) -> tuple[int, int]:
    """Where the chunk from ``start`` that may reach ``end`` (exclusive) ends, and where the
    next begins: at a paragraph, else line, else word break outside code blocks (preferring
    one that leaves the chunk a quarter full), else inside a code block too big to fit, else
    at ``end`` (moved back so as not to split a character)."""
    visible = start
    while visible < end and text[visible].isspace():
        visible += 1
    quarter = start + (end - start) // 4
    tests = (
        lambda p: text.startswith("\n\n", p),
        lambda p: text[p] == "\n",
        lambda p: text[p].isspace(),
    )
    for low, in_code in ((quarter, False), (start + 1, False), (quarter, True), (start + 1, True)):
        for test in tests:
            for position in range(end, max(low, visible + 1) - 1, -1):
                if test(position) and (in_code or not _inside(regions, starts, position)):
                    stop, resume = position, position
                    while stop > start and text[stop - 1].isspace():
                        stop -= 1
                    while resume < len(text) and text[resume].isspace():
                        resume += 1
                    return stop, resume
    position = end
    while position > start + 1 and end - position < 32 and _joins(text, position):
        position -= 1
    if not _joins(text, position):
        return position, position
    if (
        end - 1 > start
        and "\udc00" <= text[end] <= "\udfff"
        and "\ud800" <= text[end - 1] <= "\udbff"
    ):
        return end - 1, end - 1
    return end, end


def split_text(text: str, limit: int = TEXT_LIMIT) -> list[str]:
    """Split WhatsApp text into chunks of at most ``limit`` characters, at paragraph, line or
    word breaks and outside ```blocks``` where possible, never inside a surrogate pair;
    whitespace at the cuts is dropped. Blank text gives no chunks.

    A block longer than ``limit`` is cut like other text, so its pieces lose the monospace."""
    if limit < 1:
        raise ValueError("limit must be at least 1")
    if not text.strip():
        return []
    regions = _code_regions(text)
    starts = [region[0] for region in regions]
    chunks: list[str] = []
    start = 0
    while len(text) - start > limit:
        stop, resume = _cut(text, start, start + limit, regions, starts)
        chunks.append(text[start:stop])
        start = resume
    chunks.append(text[start:])
    return [chunk for chunk in chunks if chunk.strip()]
