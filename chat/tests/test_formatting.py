"""chat/formatting.py: what people type in Slack becomes safe HTML; markup they type stays text."""

import pytest

from chat.formatting import excerpt, mentioned_usernames, message_html
from chat.tests.test_security import parse_html

LINK = 'target="_blank" rel="noopener noreferrer"'


def tree(text):
    return parse_html(message_html(text))


def tags(text):
    return [node.tag for node in tree(text).walk()]


def links(text):
    return [node.attrs for node in tree(text).walk() if node.tag == "a"]


class FormattingTests:
    @pytest.mark.parametrize(
        ("text", "html"),
        [
            ("**bold**", "<p><strong>bold</strong></p>"),
            ("__bold__", "<p><strong>bold</strong></p>"),
            ("_italic_ and *italic*", "<p><em>italic</em> and <em>italic</em></p>"),
            ("~~gone~~", "<p><s>gone</s></p>"),
            ("say `x = 1`", "<p>say <code>x = 1</code></p>"),
            ("snake_case_name stays", "<p>snake_case_name stays</p>"),
            ("\\*not italic\\*", "<p>*not italic*</p>"),
        ],
    )
    def test_inline_formatting(self, text, html):
        assert message_html(text) == html

    def test_fenced_code_keeps_its_text_and_lines(self):
        text = "```\nif a < b:\n    **not bold** <b>\n```"
        html, code = message_html(text), tree(text)
        assert tags("```\nx\n```") == ["pre", "code"]
        [node] = [n for n in code.walk() if n.tag == "code"]
        assert node.text() == "if a < b:\n    **not bold** <b>\n"
        assert "<strong>" not in html and "<b>" not in html

    def test_quotes(self):
        assert tags("> quoted\nstill quoted") == ["blockquote", "p", "br"]
        assert "quoted" in tree("> quoted").text()

    @pytest.mark.parametrize(
        ("text", "outer"), [("- a\n- b", "ul"), ("* a\n* b", "ul"), ("1. a\n2. b", "ol")]
    )
    def test_lists(self, text, outer):
        assert tags(text) == [outer, "li", "li"]
        assert [n.text() for n in tree(text).walk() if n.tag == "li"] == ["a", "b"]

    def test_an_ordered_list_may_start_anywhere(self):
        assert '<ol start="3">' in message_html("3. third\n4. fourth")

    def test_line_breaks_are_kept(self):
        assert tags("one\ntwo\nthree") == ["p", "br", "br"]

    def test_headings_and_images_stay_as_typed(self):
        assert message_html("# not a heading") == "<p># not a heading</p>"
        assert "<img" not in message_html("![alt](https://example.com/i.png)")
        assert "<h1" not in message_html("Title\n=====")


class LinkTests:
    @pytest.mark.parametrize(
        ("text", "href"),
        [
            ("[the site](https://example.com/a?b=1&c=2)", "https://example.com/a?b=1&c=2"),
            ("see https://example.com/x", "https://example.com/x"),
            ("see www.example.org", "http://www.example.org"),
            ("<https://example.com>", "https://example.com"),
            ("mail mailto:someone@example.com", "mailto:someone@example.com"),
        ],
    )
    def test_links_open_in_a_new_tab_without_a_referrer(self, text, href):
        [attrs] = links(text)
        assert attrs["href"] == href
        assert attrs["target"] == "_blank"
        assert attrs["rel"] == "noopener noreferrer"
        assert LINK in message_html(text)

    def test_link_attributes_come_only_from_us(self):
        for attrs in links(
            '[x](https://example.com "a title") https://e.com/" onmouseover="alert(1)'
        ):
            assert set(attrs) <= {"href", "target", "rel", "title"}
            assert not any(name.startswith("on") for name in attrs)

    @pytest.mark.parametrize(
        "text",
        [
            "[x](javascript:alert(1))",
            "[x](JaVaScRiPt:alert(1))",
            "[x](  javascript:alert(1))",
            "[x](java\tscript:alert(1))",
            "[x](javascript&#58;alert(1))",
            "[x](&#106;avascript:alert(1))",
            "[x](vbscript:msgbox(1))",
            "[x](data:text/html,<script>alert(1)</script>)",
            "[x](file:///etc/passwd)",
            "<javascript:alert(1)>",
            "javascript:alert(1)",
            "[x][ref]\n\n[ref]: javascript:alert(1)",
        ],
    )
    def test_no_dangerous_link_ever_passes(self, text):
        for attrs in links(text):
            assert attrs["href"].split(":")[0].lower() in ("http", "https", "mailto"), attrs
        assert "javascript:" not in " ".join(
            value.lower() for attrs in links(text) for value in attrs.values()
        )


# Payloads of the XSS browser test and friends: each must come out as the text typed.
XSS_PAYLOADS = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "<svg onload=alert(1)>",
    "<svg><script>alert(1)</script></svg>",
    '<a href="javascript:alert(1)">x</a>',
    "<iframe src=javascript:alert(1)></iframe>",
    '<div hx-get="/" hx-trigger="load">htmx</div>',
    '<form hx-post="/" hx-trigger="load"></form>',
    "<style>body{display:none}</style>",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    '"><img src=x onerror=alert(1)>',
    "<!-- comment --><b>bold</b>",
    "<details open ontoggle=alert(1)>",
    "&lt;script&gt;alert(1)&lt;/script&gt;",
    "<<script>script>alert(1)<</script>/script>",
    "<scr<script>ipt>alert(1)</script>",
]


class RawHtmlTests:
    @pytest.mark.parametrize("payload", XSS_PAYLOADS)
    def test_raw_html_is_never_markup(self, payload):
        html = message_html(payload)
        assert tags(payload) == ["p"], html  # one paragraph of text, nothing else
        assert "<" not in html.removeprefix("<p>").removesuffix("</p>")

    @pytest.mark.parametrize("payload", [p for p in XSS_PAYLOADS if "&" not in p])
    def test_raw_html_reads_as_typed(self, payload):
        assert tree(payload).text() == payload

    def test_an_entity_typed_stays_text(self):
        # Character references stay as typed (markdown-it's entity rule is off).
        assert tree("&lt;script&gt;").text() == "&lt;script&gt;"
        assert tags("&lt;script&gt;") == ["p"]

    @pytest.mark.parametrize("payload", XSS_PAYLOADS)
    def test_inside_formatting_too(self, payload):
        for text in (
            f"**{payload}**",
            f"> {payload}",
            f"- {payload}",
            f"[{payload}](https://e.com)",
        ):
            for node in tree(text).walk():
                assert node.tag in {"p", "strong", "em", "blockquote", "ul", "li", "a", "code"}, (
                    text
                )
                assert not any(
                    name.startswith(("on", "hx-", "style", "src")) for name in node.attrs
                )

    def test_only_allowed_tags_can_come_out(self):
        formatted = [
            "**b** _i_ ~~s~~ `c`",
            "```\ncode\n```",
            "> q",
            "- l",
            "1. o",
            "---",
            "https://e.com",
        ]
        everything = "\n\n".join([*formatted, *XSS_PAYLOADS])
        allowed = {
            "p",
            "br",
            "strong",
            "em",
            "s",
            "del",
            "code",
            "pre",
            "blockquote",
            "ul",
            "ol",
            "li",
            "a",
            "hr",
        }
        assert set(tags(everything)) <= allowed


class ExcerptTests:
    def test_one_line_as_is(self):
        assert excerpt("hello  there\nyou") == "hello there you"

    def test_long_text_is_cut_with_an_ellipsis(self):
        text = "word " * 40
        cut = excerpt(text, length=20)
        assert len(cut) <= 20 and cut.endswith("…")
        assert excerpt("x" * 20, length=20) == "x" * 20


# --- @mentions (issue 11) ---

MENTIONS = [[3, "alice"], [5, "bob.smith"]]


def mention_links(text, mentions=MENTIONS):
    """[(text, href, class, data-mention)] of the mention links in the text's HTML."""
    found = parse_html(message_html(text, mentions)).walk()
    return [
        (
            node.text(),
            node.attrs.get("href"),
            node.attrs.get("class"),
            node.attrs.get("data-mention"),
        )
        for node in found
        if node.tag == "a" and node.attrs.get("data-mention")
    ]


ALICE = ("@alice", "/people/alice/", "mention", "u3")


class MentionLinkTests:
    @pytest.mark.parametrize(
        ("text", "links"),
        [
            ("hi @alice", [ALICE]),
            ("@alice, hi", [ALICE]),
            ("**@alice**", [ALICE]),
            ("> @alice", [ALICE]),
            ("(@alice)", [ALICE]),
            (
                "@alice and @bob.smith.",
                [ALICE, ("@bob.smith", "/people/bob.smith/", "mention", "u5")],
            ),
            ("@Alice", [("@Alice", "/people/alice/", "mention", "u3")]),
        ],
    )
    def test_known_usernames_become_links(self, text, links):
        assert mention_links(text) == links

    @pytest.mark.parametrize(
        "text",
        [
            "@carol is not mentioned",
            "`@alice` in code",
            "```\n@alice\n```",
            "    @alice indented code",
            "[ask @alice](https://e.com)",
            "https://e.com/@alice",
            "mail alice@alice.com",
            "email@alice",
            "@alice_x",
            "@alice@alice",
        ],
    )
    def test_nothing_else_is_linked(self, text):
        assert mention_links(text) == []

    def test_without_mentions_nothing_is_linked(self):
        assert mention_links("hi @alice", mentions=()) == []
        assert message_html("hi @alice") == "<p>hi @alice</p>"

    def test_a_link_around_a_name_stays_one_link(self):
        html = message_html("[ask @alice](https://e.com)", MENTIONS)
        assert [node.attrs["href"] for node in parse_html(html).walk() if node.tag == "a"] == [
            "https://e.com"
        ]

    def test_the_text_around_is_kept(self):
        html = message_html("hi @alice, **you** there?", MENTIONS)
        assert " ".join(parse_html(html).text().split()) == "hi @alice, you there?"

    def test_markup_next_to_a_mention_stays_text(self):
        html = message_html("@alice<b>x</b>", MENTIONS)
        assert mention_links("@alice<b>x</b>") == [ALICE]
        assert [node.tag for node in parse_html(html).walk()] == ["p", "a"]
        assert " ".join(parse_html(html).text().split()) == "@alice<b>x</b>"


class MentionedUsernamesTests:
    @pytest.mark.parametrize(
        ("text", "names"),
        [
            ("hi @alice and @bob.smith.", ["alice", "bob.smith"]),
            ("@alice @alice", ["alice", "alice"]),
            ("**@carol**", ["carol"]),
            ("@Alice's turn", ["Alice"]),
            ("no one here", []),
            ("`@alice` in code", []),
            ("```\n@alice\n```", []),
            ("[ask @alice](https://e.com) and @bob", ["bob"]),
            ("https://e.com/@alice", []),
            ("alice@example.com", []),
        ],
    )
    def test_names_as_people_read_them(self, text, names):
        assert mentioned_usernames(text) == names
