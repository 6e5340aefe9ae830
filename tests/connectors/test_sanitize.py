"""``sanitize_html`` (the allow-list for Matrix) and ``html_to_text``."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.connectors.sanitize import (
    ALLOWED_TAGS,
    MAX_NESTING,
    bound_html,
    html_to_text,
    parse_html,
    sanitize_html,
    serialize,
)


class Elements(HTMLParser):
    """Collects (tag, attributes) of every start tag, as a browser would see them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, {k: v or "" for k, v in attrs}))


def elements(html: str) -> list[tuple[str, dict[str, str]]]:
    parser = Elements()
    parser.feed(html)
    parser.close()
    return parser.elements


def assert_safe(html: str) -> None:
    assert "<script" not in html.lower()
    assert "<style" not in html.lower()
    assert "<!--" not in html
    for tag, attrs in elements(html):
        assert tag in ALLOWED_TAGS, tag
        for name, value in attrs.items():
            assert not re.fullmatch(r"on\w+", name), name
            assert "javascript:" not in value.lower()
            if name == "href":
                assert value.lower().startswith(("http://", "https://", "mailto:")), value
        if tag == "img":
            assert attrs.get("src", "").startswith("mxc://"), attrs


@pytest.mark.parametrize(
    ("dirty", "clean"),
    [
        ("<p>Hello <b>world</b></p>", "<p>Hello <b>world</b></p>"),
        ("<script>alert(1)</script><p>x</p>", "<p>x</p>"),
        ("<style>p{color:red}</style><p>x</p>", "<p>x</p>"),
        ('<link rel="stylesheet" href="https://evil.example/a.css"><p>x</p>', "<p>x</p>"),
        ('<p style="background:url(https://t.example/p.gif)">x</p>', "<p>x</p>"),
        ("<p>a<!-- secret --></p>", "<p>a</p>"),
        ('<p onclick="evil()" onmouseover="evil()">x</p>', "<p>x</p>"),
        ('<img src="x" onerror="alert(1)">', ""),
        ('<img src="https://t.example/p.gif" width="1" height="1">', ""),
        ('<img src="//t.example/p.gif">', ""),
        ('<img src="data:image/png;base64,AAAA">', ""),
        ('<img src="cid:logo@x">', ""),
        ('<img src="mxc://example.org/abc" alt="logo" width="10">', ""),
        ('<a href="javascript:alert(1)">x</a>', '<a rel="noopener">x</a>'),
        ('<a href="JaVaScRiPt:alert(1)">x</a>', '<a rel="noopener">x</a>'),
        ('<a href="jav&#x09;ascript:alert(1)">x</a>', '<a rel="noopener">x</a>'),
        ('<a href="vbscript:x">x</a>', '<a rel="noopener">x</a>'),
        ('<a href="data:text/html,<script>">x</a>', '<a rel="noopener">x</a>'),
        ('<a href="/relative">x</a>', '<a rel="noopener">x</a>'),
        (
            '<a href="https://ok.example/" target="_blank" rel="opener">x</a>',
            '<a href="https://ok.example/" target="_blank" rel="noopener">x</a>',
        ),  # fmt: skip
        (
            '<a href="mailto:a@b.example">a</a>',
            '<a href="mailto:a@b.example" rel="noopener">a</a>',
        ),
        ('<iframe src="https://evil.example"></iframe><p>x</p>', "<p>x</p>"),
        ("<form><input name=a><button>go</button></form>", "go"),
        ("<svg><script>alert(1)</script></svg>", ""),
        ('<font color="#ff0000" face="Arial">red</font>', '<font color="#ff0000">red</font>'),
        ('<font color="red;background:url(x)">x</font>', "<font>x</font>"),
        (
            '<span data-mx-color="#00ff00" class="x">g</span>',
            '<span data-mx-color="#00ff00">g</span>',
        ),
        ('<code class="language-python evil">x</code>', '<code class="language-python">x</code>'),
        ('<ol start="3" type="a"><li>x</li></ol>', '<ol start="3"><li>x</li></ol>'),
        (
            "<table><tr><td>1</td></tr></table>",
            "<table><tbody><tr><td>1</td></tr></tbody></table>",
        ),
        ("<p>x</p><br><br>&nbsp;<div></div> ", "<p>x</p>"),
        ("<unknown>text</unknown>", "text"),
        ("<html><head><title>T</title></head><body><p>x</p></body></html>", "<p>x</p>"),
    ],
)
def test_sanitize(dirty: str, clean: str) -> None:
    assert sanitize_html(dirty) == clean
    assert_safe(sanitize_html(dirty))


def test_only_media_the_bridge_uploaded_is_kept() -> None:
    """An ``mxc:`` image of any other server is fetched by every client through federation:
    a read-tracking pixel. Only media named in ``media`` (uploaded by the bridge) stays."""
    ours, theirs = "mxc://bridge.example/ours", "mxc://tracker.example/pixel-1234"
    html = f'<p>x<img src="{ours}" alt="logo" width="10"><img src="{theirs}" width="1"></p>'
    assert sanitize_html(html) == "<p>x</p>"
    assert sanitize_html(html, media={ours}) == f'<p>x<img src="{ours}" alt="logo" width="10"></p>'


def test_tracking_pixel_in_newsletter() -> None:
    html = (
        '<table><tr><td><p>News</p><img src="https://t.example/open?id=42" width="1" height="1"'
        ' style="display:none" alt=""></td></tr></table>'
    )
    assert "t.example" not in sanitize_html(html)


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("<p>one</p><p>two</p>", "one\n\ntwo"),
        ("<div>one</div><div>two</div>", "one\ntwo"),
        ("a<br>b<br><br>c", "a\nb\n\nc"),
        ("<h1>Title</h1>text", "Title\n\ntext"),
        ("<ul><li>one<li>two</ul>after", "- one\n- two\n\nafter"),
        ('<ol start="3"><li>a</li><li>b</li></ol>', "3. a\n4. b"),
        ('<a href="https://x.example/">link</a>', "link (https://x.example/)"),
        ('<a href="https://x.example/">https://x.example/</a>', "https://x.example/"),
        ('<a href="mailto:a@b.example">a@b.example</a>', "a@b.example"),
        ('<a href="mailto:a@b.example">write us</a>', "write us (a@b.example)"),
        ('<a href="javascript:x()">click</a>', "click"),
        ('<a href="https://x.example/"></a>', "https://x.example/"),
        ("<blockquote>q1<br>q2</blockquote>reply", "> q1\n> q2\nreply"),
        ("<pre>  indented\n    code</pre>", "  indented\n    code"),
        ("<table><tr><td>a</td><td>b</td></tr><tr><td>c</td></tr></table>", "a b\nc"),
        ("<p>a &amp; b &lt;c&gt; &nbsp;d</p>", "a & b <c> d"),
        ("<style>p{}</style><script>x()</script><p>only</p>", "only"),
        ("<p>spaced \n\n   out\t text</p>", "spaced out text"),
        ("zero\u200bwidth\u00ad", "zerowidth"),
        ("<![weird declaration <p>text", "text"),
        ("", ""),
    ],
)
def test_html_to_text(html: str, text: str) -> None:
    assert html_to_text(html) == text


def test_tree_round_trip_and_depth() -> None:
    html = '<div class="a" id="&quot;q&quot;"><p>x &amp; y<br>z</p></div>'
    assert serialize(parse_html(html)) == html
    deep = "<div>" * 10_000 + "deep" + "</div>" * 10_000
    assert html_to_text(deep) == "deep"
    assert sanitize_html(deep).count("deep") == 1


# --------------------------------------------------------------------------- properties

SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_FRAGMENTS = st.sampled_from(
    ["<script>", "</script>", "<img src=", "<a href=", '"', "'", "javascript:", "java\tscript:",
     "onerror=", "onload=alert(1)", " on", "=", ">", "<", "/", "http://t.example/p.gif",
     "mxc://a/b", "<style>", "<!--", "-->", "<![CDATA[", "]]>", "<svg", "<math", "<iframe",
     "&#106;avascript:", "<p", "<div", "<blockquote type=cite>", "<table>", "<td>", "&", ";",
     "<img", "src", "srcset=", "<object data=", "<embed", "<base href=", "style=", "url(",
     "<template>", "<noscript>", "<title>", "\x00", " "]
)  # fmt: skip
hostile_html = st.lists(st.one_of(_FRAGMENTS, st.text(max_size=8)), max_size=40).map("".join)


@SETTINGS
@given(hostile_html)
def test_sanitize_never_lets_hostile_html_through(html: str) -> None:
    clean = sanitize_html(html)
    assert_safe(clean)
    assert sanitize_html(clean) == clean  # idempotent: nothing left to remove


@SETTINGS
@given(hostile_html)
def test_html_to_text_never_raises(html: str) -> None:
    text = html_to_text(html)
    assert isinstance(text, str) and "\x00" not in text
    text.encode("utf-8")


def test_deep_nesting_is_bounded_before_parsing() -> None:
    """100,000 nested elements (html5ever's cost grows with the square of the depth) are cut
    to ``MAX_NESTING`` levels in one linear pass; the text stays."""
    depth = 100_000
    html = "<div>" * depth + "deep text" + "</div>" * depth
    bounded, cut = bound_html(html)
    assert cut and bounded.count("<div>") == MAX_NESTING == bounded.count("</div>")
    cleaned = sanitize_html(html)
    assert cleaned.count("<div>") <= MAX_NESTING and "deep text" in cleaned
    assert html_to_text(html) == "deep text"
    assert bound_html("<p>fine</p><!-- <div> -->") == ("<p>fine</p><!-- <div> -->", False)
