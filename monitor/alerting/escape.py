"""Escaping of untrusted text (titles, summaries, sources, URLs, claim text) for each channel.

Every value from a feed passes through :meth:`Escaper.text` (or :meth:`Escaper.link`) before it
reaches a message. The result is a ``Markup`` string: already safe for the escaper's format, so
the template layer will not escape it twice. Only the monitor's own links (the story URL it
shows on purpose, the claim's source) are links; nothing in feed text is. What each format
neutralizes:

- all: control characters, bidi overrides and marks, zero-width and other format (Cf) characters
  are removed; mentions are defused with a zero-width space after ``@`` (``@channel``, ``@here``,
  ``@all``, ``@room``, Telegram ``@user``); one-line fields have their newlines folded.
- all but json: URLs in feed text are defanged the way CyberChef's "Defang URL" writes them
  (``https://evil.example/a.png`` -> ``hxxps[://]evil[.]example/a[.]png``), because Slack,
  Telegram, Teams, chat apps and mail clients turn a bare ``scheme://`` into a link. Bare domain
  names (``www.example.org``) are left alone: a client that links one shows exactly its target,
  and the host printed beside the monitor's own link must stay readable.
- slack (mrkdwn has no escape character): ``& < >`` become entities (so ``<!channel>``,
  ``<@U123>`` and ``<https://evil|x>`` are inert) and ``* _ ~ ` >`` become their fullwidth
  look-alikes (``＊ ＿ ～ ｀ ＞``), so no emphasis, code or quote can start. ``[x](url)`` is plain
  text in mrkdwn, provided Apprise passes the body through unconverted (see channels.py).
- markdown (Teams, Matrix; CommonMark): ``& < >`` become entities (no raw HTML, no autolinks);
  ``\\ ` * _ ~ [ ] | #`` are backslash-escaped, as are list and heading starts at line start.
- telegram: HTML parse mode (chosen over MarkdownV2, whose 18 special characters must be escaped
  differently inside and outside links); ``& < > "`` become entities, so MarkdownV2 specials are
  plain text.
- html (e-mail): ``& < > " '`` become entities (markupsafe).
- text: for every other Apprise scheme, which is either truly plain (ntfy, Gotify, Signal,
  Pushover, form/xml webhooks) or renders Markdown-ish chat markup as is (Mattermost, Discord,
  Zulip; Rocket.Chat and Webex, which Apprise escapes again). So text must read naturally as plain
  text *and* be inert as Markdown: no backslashes. A zero-width space goes after ``]`` before
  ``( [ :`` (no ``[x](url)``, ``![i](url)``, ``[x][ref]`` or ``[x]: url``), after every ``<``
  (no autolink, HTML tag, ``<!channel>``, ``<@U1>``, Discord ``<#c>``/``<t:1>``, Rocket.Chat
  ``<url|x>``), after ``&`` of an entity (``&#8238;`` stays text) and before a block marker at
  line start (``# > - + =``, ``1.``); ``* ~ ` |`` (and ``_`` except inside a word, where no
  flavour reads it as emphasis) become fullwidth look-alikes, so no emphasis, strike, code,
  spoiler (``||x||``) or Mattermost ``~channel`` link can start.
- json: cleaned and cut, not marked up or defanged; the consumer escapes for its own display.

Cutting happens on the clean, unescaped text (word boundary, never inside a grapheme, then
"…"), and the escaped result is checked against the budget, so a cut never splits an entity.
URLs are shown only when http(s) with a real host; userinfo is dropped (``https://bank@evil``),
the host is IDNA-encoded and everything outside RFC 3986 characters is percent-encoded.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from markupsafe import Markup, escape

ELLIPSIS = "…"
# Whole bodies, measured as the channel counts: Slack one mrkdwn section (Apprise ``blocks=yes``
# puts the body in one: 3,000 chars), Telegram 4,096 UTF-16 units, Teams ~28 KB of UTF-8 (24 KB
# leaves room for the card around it); e-mail and JSON webhooks have no hard limit.
BODY_LIMITS: dict[str, int] = {"slack": 3_000, "telegram": 4_096, "markdown": 24_000,
                               "html": 100_000, "text": 4_000, "json": 100_000}
_UNITS = {"telegram": "utf-16-le", "markdown": "utf-8", "html": "utf-8", "json": "utf-8"}
ZWSP = "\u200b"  # our own mention breaker; Cf characters in the input are removed before it
MAX_URL_CHARS = 500

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_SPACES = re.compile(r"\s+")
_MENTION = re.compile(r"@(?=\w)")
_URL_SAFE = "-._~:/?#[]@!$&'*+,;=%"
_HOST = re.compile(r"^[a-z0-9.-]+$")
_SLACK_LOOKALIKE = str.maketrans({"*": "＊", "_": "＿", "~": "～", "`": "｀"})
_MD_INLINE = re.compile(r"([\\`*_~\[\]|#])")
_MD_LINE_START = re.compile(r"(?m)^(\s*)([-+=]|\d+[.)])")
# Any scheme: chat clients link tg://, ftp:// and custom schemes as readily as https://.
_URL_IN_TEXT = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]{0,31})://(\S*)")
_TEXT_LOOKALIKE = str.maketrans({"*": "＊", "~": "～", "`": "｀", "|": "｜"})
_TEXT_UNDERSCORE = re.compile(r"_(?<![^\W_]_)|_(?![^\W_])")  # not between two letters/digits
_TEXT_LINK_JOIN = re.compile(r"\](?=[(\[:])")
_TEXT_ENTITY = re.compile(r"&(?=#?[0-9A-Za-z]{1,32};)")
_TEXT_LINE_START = re.compile(r"(?m)^(\s*)(?=[#>+=-]|\d+[.)])")
# Characters of a URL path that Markdown-ish chat clients read as syntax next to an autolink.
_TEXT_URL_QUOTE = str.maketrans({"(": "%28", ")": "%29", "[": "%5B", "]": "%5D", "*": "%2A",
                                 "!": "%21", "@": "%40"})


def clean(text: str) -> str:
    """Drop control, format (bidi, zero-width) and surrogate characters; unify newlines."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\u2028", "\n")
    text = _CONTROL.sub("", text.replace("\u2029", "\n").replace("\t", " "))
    return "".join(ch for ch in text if unicodedata.category(ch) not in ("Cf", "Cs", "Co"))


def fold(text: str) -> str:
    """Clean text and fold every run of whitespace, newlines included, into one space."""
    return _SPACES.sub(" ", clean(text)).strip()


def _joins_previous(ch: str) -> bool:
    """True when ``ch`` belongs to the grapheme before it (combining mark, selector, skin tone)."""
    code = ord(ch)
    return (unicodedata.category(ch) in ("Mn", "Mc", "Me") or 0xFE00 <= code <= 0xFE0F
            or 0x1F3FB <= code <= 0x1F3FF or 0xE0100 <= code <= 0xE01EF)


def _grapheme_cut(text: str, index: int) -> int:
    while 0 < index < len(text) and _joins_previous(text[index]):
        index -= 1
    run = 0  # regional indicators pair up into flags: never split a pair
    while index - run > 0 and 0x1F1E6 <= ord(text[index - run - 1]) <= 0x1F1FF:
        run += 1
    return index - 1 if run % 2 and index < len(text) and _is_indicator(text[index]) else index


def _is_indicator(ch: str) -> bool:
    return 0x1F1E6 <= ord(ch) <= 0x1F1FF


def shorten(text: str, max_chars: int) -> str:
    """Cut ``text`` to at most ``max_chars``, at a word boundary when one is near, adding "…"."""
    if len(text) <= max_chars:
        return text
    if max_chars < 2:
        return ""
    index = _grapheme_cut(text, max_chars - 1)
    space = text.rfind(" ", 0, index + 1)
    if space > index * 2 // 3:
        index = space
    return text[:index].rstrip(" ,;:-–—") + ELLIPSIS


def safe_url(url: str | None) -> str | None:
    """The URL normalized for display, or None unless it is http(s) with a plausible host."""
    if not url:
        return None
    try:
        parts = urlsplit(fold(url))
        host = (parts.hostname or "").encode("idna").decode("ascii")
        port = parts.port
    except (ValueError, UnicodeError):
        return None
    if parts.scheme.lower() not in ("http", "https") or not host:
        return None
    if not _HOST.match(host) and not (":" in host and re.fullmatch(r"[0-9a-f:.]+", host)):
        return None
    netloc = f"[{host}]" if ":" in host else host
    netloc += f":{port}" if port is not None else ""
    tail = quote(parts.path or "/", safe=_URL_SAFE)
    tail += "?" + quote(parts.query, safe=_URL_SAFE) if parts.query else ""
    tail += "#" + quote(parts.fragment, safe=_URL_SAFE) if parts.fragment else ""
    result = f"{parts.scheme.lower()}://{netloc}{tail}"
    return result if len(result) <= MAX_URL_CHARS else None


def defuse_mentions(text: str) -> str:
    return _MENTION.sub("@" + ZWSP, text)


def defang_urls(text: str) -> str:
    """``scheme://host.tld/a.b`` as ``scheme[://]host[.]tld/a[.]b`` (http -> hxxp)."""
    def defang(match: re.Match[str]) -> str:
        scheme = match.group(1)
        if scheme.lower() in ("http", "https"):
            scheme = scheme[0] + "xx" + scheme[3:]
        return f"{scheme}[://]{match.group(2).replace('.', '[.]')}"

    return _URL_IN_TEXT.sub(defang, text)


def escape_slack(text: str) -> str:
    text = defuse_mentions(defang_urls(text)).translate(_SLACK_LOOKALIKE)
    return _entities(re.sub(r"(?m)^(\s*)>", "\\1＞", text))


def _entities(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def escape_markdown(text: str) -> str:
    text = _entities(defuse_mentions(defang_urls(text)))
    text = _MD_INLINE.sub(r"\\\1", text)
    return _MD_LINE_START.sub(lambda m: m.group(1) + m.group(2)[:-1] + "\\" + m.group(2)[-1], text)


def escape_html(text: str) -> str:
    return str(escape(defang_urls(text)))


def escape_telegram(text: str) -> str:
    return _entities(defuse_mentions(defang_urls(text))).replace('"', "&quot;")


def escape_text(text: str) -> str:
    """Plain text that is also inert Markdown (see the module docstring)."""
    text = defuse_mentions(defang_urls(text)).translate(_TEXT_LOOKALIKE)
    text = _TEXT_UNDERSCORE.sub("＿", text).replace("<", "<" + ZWSP)
    text = _TEXT_ENTITY.sub("&" + ZWSP, _TEXT_LINK_JOIN.sub("]" + ZWSP, text))
    return _TEXT_LINE_START.sub(lambda m: m.group(1) + ZWSP, text)


def _identity(text: str) -> str:
    return text


def _link_slack(url: str, label: str) -> str:
    return f"<{url.replace('&', '&amp;')}|{label}>"


def _link_markdown(url: str, label: str) -> str:
    return f"[{label}]({url.replace('(', '%28').replace(')', '%29')})"


def _link_html(url: str, label: str) -> str:
    return f'<a href="{escape(url)}">{label}</a>'


def _link_text(url: str, label: str) -> str:
    scheme, _, rest = url.partition("://")
    host, slash, tail = rest.partition("/")  # an IPv6 host keeps its brackets
    return f"{label} ({scheme}://{host}{slash}{tail.translate(_TEXT_URL_QUOTE)})"


def _link_json(url: str, label: str) -> str:
    return f"{label} ({url})"


@dataclass(frozen=True, slots=True)
class Escaper:
    """Escaping and link syntax for one message format.

    ``escape`` takes clean text and returns it safe for the format; ``make_link`` takes a URL
    from :func:`safe_url` and an escaped label.
    """

    format: str
    escape: Callable[[str], str]
    make_link: Callable[[str, str], str]

    def text(self, value: object, limit: int = 0, *, one_line: bool = True) -> Markup:
        """``value`` cleaned, cut so that its *escaped* form has at most ``limit`` characters
        (0: no limit), and escaped. Cutting happens before escaping, never inside an entity."""
        text = str(value)
        cap = 4 * limit + 256 if limit > 0 else len(text)  # 100 kB titles: clean only the head
        raw = fold(text[:cap]) if one_line else clean(text[:cap]).strip()
        if len(text) > cap and len(raw) <= limit:  # the cut is out of sight: still show it
            raw = shorten(raw, len(raw) - 1)
        if limit <= 0:
            return Markup(self.escape(raw))
        budget = limit
        while budget > 0:
            out = self.escape(shorten(raw, budget))
            if len(out) <= limit:
                return Markup(out)
            budget = min(budget - 1, budget * limit // len(out))
        return Markup("")

    def link(self, url: str | None, label: object, limit: int = 0) -> Markup:
        """A link in the format's syntax, or just the escaped label when the URL is unsafe."""
        safe = safe_url(url)
        text = self.text(label, limit)
        if safe is None:
            return text
        return Markup(self.make_link(safe, str(text)))


ESCAPERS: dict[str, Escaper] = {
    "slack": Escaper("slack", escape_slack, _link_slack),
    "markdown": Escaper("markdown", escape_markdown, _link_markdown),
    "telegram": Escaper("telegram", escape_telegram, _link_html),
    "html": Escaper("html", escape_html, _link_html),
    "text": Escaper("text", escape_text, _link_text),
    "json": Escaper("json", _identity, _link_json),
}


def measure(fmt: str, body: str) -> int:
    """The size of ``body`` in the units its channel's limit counts (see BODY_LIMITS)."""
    encoding = _UNITS.get(fmt)
    if encoding is None:
        return len(body)
    size = len(body.encode(encoding))
    return size // 2 if encoding == "utf-16-le" else size


def escaper_for(fmt: str) -> Escaper:
    """The escaper of a format; ValueError naming the known formats for any other."""
    try:
        return ESCAPERS[fmt]
    except KeyError:
        raise ValueError(f"alert format {fmt!r} is not one of {sorted(ESCAPERS)}") from None
