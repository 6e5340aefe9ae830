"""Trimming what Matrix shows of a mail: quoted history, reply headers and signatures, in plain
text and in HTML (the untouched original stays available as ``original.eml``)."""

from __future__ import annotations

import re

from ..sanitize import VOID_TAGS, HtmlNode, parse_html, serialize

MAX_TRIM_TEXT = 500_000


MAX_TRIM_HTML = 1_000_000


"""Larger bodies are shown untrimmed (trimming them would be slow)."""


_ATTRIBUTIONS = (
    (r"On", r"wrote"),
    (r"Am", r"(?:schrieb|geschrieben)[^\n]{0,200}?"),
    (r"Le", r"a\s+écrit"),
    (r"El", r"escribió"),
    (r"Op", r"schreef[^\n]{0,200}?"),
    (r"Il", r"ha\s+scritto"),
    (r"Den", r"skrev[^\n]{0,200}?"),
)


_ATTRIBUTION = re.compile(
    r"^[ \t]*(?:"
    + "|".join(
        rf"{start}\b[^\n]{{0,300}}?(?:\n(?![ \t]*>)[^\n]{{0,300}}?){{0,2}}\b{verb}[ \t]*:"
        for start, verb in _ATTRIBUTIONS
    )
    + r")[ \t]*$",
    re.MULTILINE,
)


_ATTRIBUTION_LINE = re.compile(
    r"(?:"
    + "|".join(rf"{start}\b.{{0,400}}?\b{verb}[ \t]*:" for start, verb in _ATTRIBUTIONS)
    + r")"
)


_SEPARATOR = re.compile(
    r"-{2,}[ \t]*(?:Original Message|Ursprüngliche Nachricht|Message d'origine|Mensaje original"
    r"|Messaggio originale|Oorspronkelijk bericht|Originalmeddelande|Původní zpráva"
    r"|Wiadomość oryginalna|Opprinnelig melding)[ \t]*-{2,}",
    re.IGNORECASE,
)


_FROM_LABEL = re.compile(r"\*?(?:From|Von|De|Van|Da|Från|Fra|Od)[ \t]?:", re.IGNORECASE)


_SENT_LABEL = re.compile(
    r"\*?(?:Sent|Gesendet|Envoyé|Enviado|Verzonden|Inviato|Skickat|Sendt|Wysłano)[ \t]?:",
    re.IGNORECASE,
)


_RULE = re.compile(r"[ \t]*(?:_{10,}|-{10,})[ \t]*")


_WROTE_END = re.compile(
    r"(?:wrote|schrieb|geschrieben|écrit|escribió|schreef|skrev|scritto)[ \t]*:[ \t]*$",
    re.IGNORECASE,
)


def _reply_header_start(text: str) -> int | None:
    """Where the first quoted-history header of plain ``text`` begins, if anywhere."""
    candidates: list[int] = []
    for match in _ATTRIBUTION.finditer(text):
        if any(ch.isdigit() for ch in match.group(0)):
            candidates.append(match.start())
            break
    separator = re.search(r"^[ \t]*" + _SEPARATOR.pattern + r"[ \t]*$", text, re.M | re.I)
    if separator:
        candidates.append(separator.start())
    lines = text.split("\n")
    offset = 0
    for i, line in enumerate(lines):
        if _FROM_LABEL.match(line.lstrip()) and (
            _SENT_LABEL.search(line)
            or any(_SENT_LABEL.match(following.lstrip()) for following in lines[i + 1 : i + 7])
        ):
            start = offset
            previous = [j for j in range(i) if lines[j].strip()][-1:]
            if previous and _RULE.fullmatch(lines[previous[0]]):
                start = sum(len(line) + 1 for line in lines[: previous[0]])
            candidates.append(start)
            break
        offset += len(line) + 1
    return min(candidates) if candidates else None


def trim_text(text: str) -> str:
    """Plain ``text`` without quoted history (from the first reply header on, trailing
    ``>`` blocks) and without the signature (from a "-- " line on). Falls back to the whole
    text rather than return nothing."""
    original = "\n".join(line.rstrip() for line in text.strip("\n").split("\n")).strip("\n")
    if len(original) > MAX_TRIM_TEXT:
        return original
    cut = _reply_header_start(original)
    trimmed = original[:cut] if cut is not None else original
    lines = trimmed.split("\n")
    for i, line in enumerate(lines):
        if line.rstrip() == "--":
            lines = lines[:i]
            break
    quoted = False
    while lines and (not lines[-1].strip() or lines[-1].lstrip().startswith(">")):
        quoted = quoted or lines[-1].lstrip().startswith(">")
        lines.pop()
    if quoted and lines and _WROTE_END.search(lines[-1]):
        lines.pop()
    result = "\n".join(lines).strip()
    return result or original.strip()


_QUOTE_CLASSES = frozenset(
    {"gmail_quote", "gmail_quote_container", "moz-cite-prefix", "yahoo_quoted",
     "protonmail_quote", "gmail_signature", "moz-signature"}
)  # fmt: skip


_CUT_IDS = frozenset(
    {"divrplyfwdmsg", "appendonsend", "stopspelling", "mail-editor-reference-message-container"}
)


_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|mso-hide\s*:\s*all", re.IGNORECASE)


def trim_html(html: str) -> str:
    """``html`` (unsanitised) without quoted history and signature blocks: cited blockquotes,
    Gmail/Thunderbird/Yahoo quote and signature elements, hidden elements, and everything from
    Outlook's reply markers or a reply header on. Returns ``html`` unchanged when it cannot be
    parsed."""
    if len(html) > MAX_TRIM_HTML:
        return html
    try:
        root = parse_html(html)
    except ValueError:
        return html
    doomed = {
        id(node)
        for node in root.iter()
        if node.tag is not None
        and (
            (node.tag == "blockquote" and node.attrs.get("type", "").lower() == "cite")
            or not _QUOTE_CLASSES.isdisjoint(node.classes())
            or _HIDDEN_STYLE.search(node.attrs.get("style", ""))
        )
    }
    for node in root.iter():
        if any(id(child) in doomed for child in node.children):
            node.children = [child for child in node.children if id(child) not in doomed]
    cut = _html_cut_point(root)
    if cut is not None:
        _cut_from(cut)
    _strip_trailing(root)
    return serialize(root)


def _html_cut_point(root: HtmlNode) -> HtmlNode | None:
    """The first node of quoted history or signature in document order, if any."""
    texts: list[tuple[HtmlNode, str]] = []
    marker: HtmlNode | None = None
    for node in root.iter():
        if node.tag is not None:
            if node.attrs.get("id", "").lower() in _CUT_IDS:
                marker = node
                break
            continue
        raw = node.text.replace("\xa0", " ")
        if raw.strip("\r\n") == "-- ":
            marker = node
            break
        if text := " ".join(raw.split()):
            texts.append((node, text))
    for i, (node, text) in enumerate(texts):
        if _SEPARATOR.fullmatch(text):
            return node
        if _FROM_LABEL.match(text) and (
            _SENT_LABEL.search(text) or any(_SENT_LABEL.match(t) for _, t in texts[i + 1 : i + 7])
        ):
            return node
        joined = text
        for j in range(i, min(i + 4, len(texts))):
            if j > i:
                joined += " " + texts[j][1]
            if _ATTRIBUTION_LINE.fullmatch(joined) and any(ch.isdigit() for ch in joined):
                return node
    return marker


def _cut_from(node: HtmlNode) -> None:
    """Remove ``node`` and everything after it in document order."""
    child, keep_child = node, False
    while child.parent is not None:
        parent = child.parent
        index = next(i for i, c in enumerate(parent.children) if c is child)
        parent.children = parent.children[: index + 1 if keep_child else index]
        child, keep_child = parent, True


def _strip_trailing(node: HtmlNode) -> bool:
    """Drop trailing whitespace, breaks, rules and empty elements; True if nothing is left."""
    while node.children:
        last = node.children[-1]
        if last.tag is None:
            if last.text.replace("\xa0", " ").strip():
                return False
        elif last.tag == "img":
            return False
        elif last.tag not in VOID_TAGS and not _strip_trailing(last):
            return False
        node.children.pop()
    return True
