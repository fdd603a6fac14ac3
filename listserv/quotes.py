"""The author's own words: a mail body without quoted text, quote headers, forwards and signatures.

Pure text in, text out; no I/O. Three views of one line-by-line analysis:

- ``trim(text)``: the reply as a reader wants it in a digest excerpt. Interleaved quotes (a quote
  the author answers below) are kept for context; quotes after the last line of the author's
  text, quote headers, forwarded parts, signatures and list footers are removed. A mail that is
  only a forward gives the forwarded text, a mail that is only a quote gives the quote. This is
  what the discourse answer key (``email_reply_trimmer``) measures.
- ``own_words(text)``: what the author wrote, for the participation policy: ``trim`` without any
  quoted line, and nothing at all for a bare forward (forwarding is not writing).
- ``forwarded_part(text, quotes=True)``: the quoted and forwarded material, without quote markers,
  quote headers or header blocks, so the policy can compare it with texts already public;
  ``quotes=False`` keeps only explicit forwards (whose links the policy follows).

How a line is read (see ``_classify``):
- quote: starts with ">" (also supercite initials such as "C>"); also a lower-case line right
  under a long quoted line, when a quote or a blank line follows it: the tail of a quoted line
  that the sender's client re-wrapped without its ">";
- quote header ("attribution"): "On <date>, <someone> wrote:" and its German, French, Spanish,
  Dutch, Portuguese, Italian, Polish, Czech, Russian, Ukrainian, Nordic, Finnish, Hungarian,
  Turkish and Chinese forms, possibly wrapped over up to five lines (the first may open with only
  a weekday and a date, "pe 20. lokakuuta 2017 klo 17.50 Name"); Gmail's "2016-03-03 17:21
  GMT+01:00 Name"; "2013/7/20 Name <a@b>"; and with no verb at all, a date, a time and an
  address ending the line with a colon ("ср, 30 апр. 2025 г. в 15:19, Name <a@b>:");
- forward marker: "---------- Forwarded message ---------", "-----Original Message-----",
  "Begin forwarded message:" and translations; any short phrase between dashes that a header
  block follows ("-------- Oprindelig besked --------");
- header block: a "From:" line (or De:/Von:/Van:/Da:/Fra:/Från:/От:...) or a date line (Date:,
  "Message du"...) followed by more header fields, with a From field and a date field, or both
  "To:" and "Subject:". A lone "From:" (or "From:" + "To:") in the author's own text is left alone;
- signature: a "-- " or "--" line; a mobile signature ("Sent from my iPhone", "Get Outlook for
  iOS", "Envoyé depuis mon iPhone", "Gesendet von Outlook für Android"... on a short line); an
  underscore rule followed by a short tail or a list footer, or a short one ("__") over a list
  footer.

What is never cut: a line that merely holds a date or a time (a verbless header needs the
address and the colon too), a dashed heading that no header block follows, a sentence that
starts like a sign-off (more than eight words).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum

__all__ = ["count_words", "forwarded_part", "own_words", "trim", "word_tokens"]


class _Kind(Enum):
    EMPTY = "e"
    TEXT = "t"
    QUOTE = "q"
    QUOTED_HEADER = "Q"  # a quote header or forward marker inside a quote: noise, always dropped
    ATTRIBUTION = "a"
    FORWARD = "f"
    HEADERS = "h"
    SIGNATURE = "s"
    FOOTER_RULE = "r"


# Characters that mail clients and HTML-to-text put where a plain space was meant.
_SPACES = str.maketrans({"\u00a0": " ", "\u202f": " ", "\u2007": " ", "\u200b": "", "\ufeff": ""})

_QUOTE = re.compile(r"^[ \t]*(?:>|[A-Z]{1,3}>)")
_DEQUOTE = re.compile(r"^[ \t]*(?:(?:>|[A-Z]{1,3}>)[ \t]?)+")
_DECORATION = re.compile(r"^[\s\-_=+~#*ᐧ—–•·]*$")
_SIG_DASHES = re.compile(r"^--\s*$")
_UNDERSCORE_RULE = re.compile(r"^\s*_{5,}\s*$")
_SHORT_RULE = re.compile(r"^\s*_{2,4}\s*$")  # "__" over a list footer (some list servers)
_LIST_FOOTER = re.compile(r"mailing list|listinfo|mailman|unsubscribe|list-?info", re.IGNORECASE)

# "wrote" and its translations. Used at the end of a quote header ("On ..., X wrote:").
# A gendered form may follow in brackets: "napisał(a)", "написал(а)", "napísal(a)".
_VERB_END = (
    r"(?:(?:wrote|writes|a\s+écrit|a\s+ecrit|nous\s+a\s+dit|schrieben\s+Sie|schrieb|geschrieben|"
    r"escribió|escribio|schreef|geschreven|escreveu|ha\s+scritto|a\s+scris|napisał|napisal|"
    r"skrev|написала?|пишет|пише|kirjoitti|napsala?|napísala?|yazdı|írta|έγραψε|님이\s*작성|写道)"
    r"(?:\(\w{1,3}\))?)"
)
_ATTR_VERB_END = re.compile(rf"(?:^|[\s,\"'>)]){_VERB_END}\s*[:：]?\s*$", re.IGNORECASE)
# Verb before the name or the date: "Am 3.2.2016 schrieb Max <m@x>:", "Max <m@x> schrieb am Fr.,
# 28. Apr. 2017 um 11:53 Uhr:", "Op 16 aug. 2014 05:13 schreef "x" <y>:", "Den ... skrev J <j@x>:".
_ATTR_VERB_MID = re.compile(
    r"\b(?:wrote|schrieb|schreef|skrev|escribió|odesílatel|írta|kirjoitti)\b.{1,160}[:：]\s*$", re.IGNORECASE)
# How a quote header opens: a preposition, a date, or a weekday's short name and a day
# ("Mon, 3", "ср, 30", "pe 20.", "man. 3.", "mån 3": Gmail in most languages).
_ATTR_OPENER = re.compile(
    r"^(?:On|At|In message|Le|Am|El|Op|Em|Il|Dnia|Dňa|Den|søn\.|\d|[A-Za-zÀ-ÿА-яё]+,\s*\d"
    r"|[^\W\d_]{1,4}\.?\s+\d|在)\b",
    re.IGNORECASE,
)
# A quote header with no verb: a date, a time and the quoted person's address, ending in a
# colon ("ср, 30 апр. 2025 г. в 15:19, Иван <i@x.ru>:", "30.09.2017, 18.30, "A" <a@x>:").
# All three together: a line of prose that merely holds a date is never cut.
_TIME = re.compile(r"(?<!\d)\d{1,2}[:.]\d\d(?!\d)")
_YEAR = re.compile(r"(?<!\d)(?:19|20)\d\d(?!\d)|(?<!\d)\d{1,2}[./-]\d{1,2}[./-]\d\d(?!\d)")
_ADDRESS_COLON_END = re.compile(r"[<(\s\"'][^<>()\s@\"']+@[^<>()\s\"']+[>)]?\s*[:：]$")
_DIGIT = re.compile(r"\d")
_DATE_OR_ADDRESS = re.compile(r"[\d@]")
_ANGLE_ADDRESS = re.compile(r"<[^<>\s]*@")
_GMAIL_ISO = re.compile(r"^\d{4}-\d\d-\d\d \d{1,2}:\d\d GMT[+-]\d{1,2}:\d\d\b")
_DATE_ADDRESS = re.compile(r"^\d{4}[-/.]\d{1,2}[-/.]\d{1,2}\b.{0,120}<[^<>\s@]+@[^<>\s]+>\s*:?\s*$")

_FORWARD = re.compile(
    r"^(?:-{2,}\s*(?:forwarded message|original message|reply message|message transféré|"
    r"message d'origine|ursprüngliche nachricht|weitergeleitete nachricht|mensaje original|"
    r"mensaje reenviado|messaggio originale|messaggio inoltrato|oorspronkelijk bericht|"
    r"doorgestuurd bericht|mensagem original|mensagem encaminhada|ursprungligt meddelande|"
    r"opprinnelig melding|oprindelig (?:besked|meddelelse)|videresendt (?:besked|meddelelse|melding)|"
    r"originalmeddelande|vidarebefordrat meddelande|alkuperäinen viesti|välitetty viesti|"
    r"исходное сообщение|пересылаемое сообщение|původní zpráva|přeposlaná zpráva|"
    r"oryginalna wiadomość|przekazana wiadomość|eredeti üzenet|továbbított üzenet|orijinal mesaj|"
    r"iletilen mesaj|originalnachricht|origineel bericht|message original|mensagem original|"
    r"原始邮件|转发的邮件)\s*-{2,}"
    r"|(?:begin forwarded message|début du message (?:transféré|réexpédié)|"
    r"anfang der weitergeleiteten nachricht|inicio del mensaje reenviado)\s*:)",
    re.IGNORECASE,
)

# Header field names as mail clients write them in a quoted or forwarded header block.
_FROM_FIELDS = r"from|de|von|van|da|fra|från|od|от|lähettäjä|feladó|kimden|afzender|发件人|expéditeur"
_DATE_FIELDS = (r"sent|date|envoyé|gesendet|datum|data|dato|enviado|enviada em|fecha|skickat|sendt|"
                r"verzonden|inviato|elküldve|"
                r"lähetetty|päivämäärä|дата|отправлено|odesláno|wysłano|dátum|tarih|gönderildi|"
                r"message du|发送时间|日期")
_TO_FIELDS = r"to|à|a|an|aan|para|till|til|komu|кому|do|vastaanottaja|címzett|kime|收件人|destinataire"
_SUBJECT_FIELDS = (r"subject|objet|sujet|betreff|onderwerp|oggetto|asunto|assunto|ämne|emne|aihe|тема|"
                   r"předmět|temat|tárgy|konu|主题")
_OTHER_FIELDS = (r"cc|bcc|reply-to|répondre à|risposta|kopie|kopia|kopio|копия|copie à|copie|"
                 r"beantwoorden - aan")
_FIELD = re.compile(
    r"^\s*\**\s*(?P<name>"
    + "|".join((_FROM_FIELDS, _DATE_FIELDS, _TO_FIELDS, _SUBJECT_FIELDS, _OTHER_FIELDS))
    + r")\s*\**\s*[:：]\s*\**(?P<value>.*)$",
    re.IGNORECASE,
)
# "Message du 03/03/25 10:02" (French webmail) opens a block with no colon after its name.
_MESSAGE_DU = re.compile(r"^\s*(?P<name>message du)\s+(?P<value>\d.*)$", re.IGNORECASE)
# A short phrase between dashes ("-------- Oprindelig besked --------") is a forward marker in
# any language when a header block follows it.
_DASHED_PHRASE = re.compile(r"^-{2,}\s*[^\W\d_][^-]{2,40}?\s*-{2,}$")
_FROM_NAME = re.compile(rf"^(?:{_FROM_FIELDS})$", re.IGNORECASE)
_DATE_NAME = re.compile(rf"^(?:{_DATE_FIELDS})$", re.IGNORECASE)
_TO_NAME = re.compile(rf"^(?:{_TO_FIELDS})$", re.IGNORECASE)
_SUBJECT_NAME = re.compile(rf"^(?:{_SUBJECT_FIELDS})$", re.IGNORECASE)

_MOBILE = re.compile(
    r"^[(<\s]*(?:sent (?:from|via|with|by|using) \S"
    r"|from my (?:iphone|ipad|ipod|android|mobile|phone|samsung|galaxy|blackberry|huawei|pixel)"
    r"|\w+ from mobile\b|get outlook for |envoyé depuis (?:mon|ma|yahoo)|von meinem .+ gesendet"
    r"|diese nachricht wurde von .+ gesendet|inviato da |sendt fra min |enviado (?:desde|do) (?:mi|meu) "
    r"|verzonden (?:met|vanaf) |verstuurd (?:met|vanaf) mijn |skickat från min |från min "
    r"|從我的 iphone 傳送|来自我的|发自我的"
    # "Sent from ..." in other languages: "Gesendet von Outlook für Android", "Envoyé de mon
    # iPhone", "Envoyé à partir de Courrier pour Windows", "Отправлено с iPhone"...
    r"|(?:gesendet|envoyé|enviado|inviato|verzonden|verstuurd|skickat|sendt|отправлено|wysłane|"
    r"odesláno|poslano|trimis|gönderildi)\s+(?:von|vom|de|depuis|à partir de|desde|do|da|dal|mit|"
    r"met|vanaf|via|från|fra|med|z|ze|с|из|din|from)\s+\S"
    r"|lähetetty \S"
    # "Get Outlook for iOS" in any language: Outlook and a mobile system on one short line.
    r"|.{0,40}\boutlook\b.{0,25}\b(?:ios|android)\b)",
    re.IGNORECASE,
)
_MARKDOWN_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_ANGLE_URL = re.compile(r"<https?://[^>]*>")
_WORD = re.compile(r"\w+(?:['’]\w+)*")

_MAX_ATTRIBUTION = 300  # characters; a real quote header is one sentence, never a paragraph
_JOIN_LINES = 5  # a quote header wrapped by the sender's client: at most this many lines
_SHORT_TAIL = 6  # non-empty lines after an underscore rule that make it a signature or footer


def word_tokens(text: str) -> list[str]:
    """Lower-cased word tokens (letters and digits, apostrophes inside words)."""
    return [w.lower() for w in _WORD.findall(text)]


def count_words(text: str) -> int:
    """Number of words in ``text`` (the same tokens as ``word_tokens``)."""
    return sum(1 for _ in _WORD.finditer(text))


def _clean(line: str) -> str:
    return line.strip()  # no-break spaces are already plain ones (``_lines``)


def _dequote(line: str) -> str:
    return _DEQUOTE.sub("", line, count=1)


def _is_attribution(candidate: str) -> bool:
    # A date or an address is what tells "On Monday, Bob wrote:" apart from prose.
    if len(candidate) > _MAX_ATTRIBUTION + 20 or not _DATE_OR_ADDRESS.search(candidate):
        return False
    s = candidate.strip().strip("-*_ \t").strip()
    if not s or len(s) > _MAX_ATTRIBUTION:
        return False
    if _GMAIL_ISO.match(s) or _DATE_ADDRESS.match(s):
        return True
    if _ADDRESS_COLON_END.search(s) and _TIME.search(s) and _YEAR.search(s):
        return True
    if _ATTR_VERB_END.search(s):
        return True
    mid = _ATTR_VERB_MID.search(s)
    if mid is None:
        return False
    if _ATTR_OPENER.match(s) or _ANGLE_ADDRESS.search(s):
        return True
    # "Ann Lee kirjoitti 3.3.2025 klo 10.02:": a name (capitalised words, not a lone "I"), the
    # verb, then a date and a time.
    name, after = s[:mid.start()].split(), s[mid.start():]
    return (2 <= len(name) <= 5 and all(w[0].isupper() for w in name)
            and bool(_TIME.search(after) and _YEAR.search(after)))


def _is_mobile_signature(line: str) -> bool:
    s = _ANGLE_URL.sub("", _MARKDOWN_LINK.sub(r"\1", _clean(line)))
    if not _MOBILE.match(s):
        return False
    # "Sent from my desk, is much easier than my phone." is a sentence, not a signature.
    words = s.split()
    return len(words) <= 8 or bool(re.search(r"excuse|typo", s, re.IGNORECASE))


def _field(line: str) -> tuple[str, str] | None:
    m = _FIELD.match(line) or _MESSAGE_DU.match(line)
    if m is None or not m.group("value").strip(" *"):
        return None
    return m.group("name").lower(), m.group("value")


def _header_block_end(lines: list[str], start: int) -> int | None:
    """End (exclusive) of a header block starting at ``start``, or None when it is not one."""
    first = _field(lines[start])
    if first is None or not (_FROM_NAME.match(first[0]) or _DATE_NAME.match(first[0])):
        return None
    names = [first[0]]
    has_date = False
    i = start + 1
    while i < len(lines) and i - start < 12:
        f = _field(lines[i])
        if f is not None:
            names.append(f[0])
            has_date = has_date or (_DATE_NAME.match(f[0]) is not None and _DIGIT.search(f[1]) is not None)
        elif not _clean(lines[i]):
            break
        elif not (i + 1 < len(lines) and _field(lines[i + 1]) is not None):
            break  # a wrapped value (a long Subject) is only kept when another field follows
        i += 1
    has_from = any(_FROM_NAME.match(n) for n in names)
    has_to = any(_TO_NAME.match(n) for n in names)
    has_subject = any(_SUBJECT_NAME.match(n) for n in names)
    if not _FROM_NAME.match(first[0]):
        # Opened by a date ("Message du : ..."): an event's "Date: / From: 9.30 / To: 12.30" is
        # no header block; a quoted one names its subject too.
        return i if has_from and has_subject else None
    if has_date or (has_to and has_subject):
        return i
    return None


@dataclass
class _Analysis:
    lines: list[str]
    kinds: list[_Kind]
    spans: dict[int, int] = field(default_factory=dict)  # first line -> end (exclusive) of a block


def _classify(lines: list[str]) -> _Analysis:
    n = len(lines)
    a = _Analysis(lines, [_Kind.TEXT] * n)
    singles = [False] * n
    for i, line in enumerate(lines):
        s = _clean(line)
        if not s:
            a.kinds[i] = _Kind.EMPTY
        elif _QUOTE.match(line):
            inner = _clean(_dequote(line))
            if inner and (_is_attribution(inner) or _FORWARD.match(inner)):
                a.kinds[i] = _Kind.QUOTED_HEADER
            else:
                a.kinds[i] = _Kind.QUOTE
        elif _SIG_DASHES.match(line) or _is_mobile_signature(line):
            a.kinds[i] = _Kind.SIGNATURE
        elif _FORWARD.match(s.strip("*_ ")) or (_DASHED_PHRASE.match(s) and _opens_header_block(lines, i)):
            a.kinds[i] = _Kind.FORWARD
        elif _is_attribution(s):
            a.kinds[i] = _Kind.ATTRIBUTION
            singles[i] = True
    for i in range(1, n):
        if a.kinds[i] is _Kind.TEXT and _is_rewrapped_quote(lines, a.kinds, i):
            a.kinds[i] = _Kind.QUOTE
    i = 0
    while i < n:
        kind = a.kinds[i]
        if kind is _Kind.TEXT:
            end = _header_block_end(lines, i)
            if end is not None:
                a.kinds[i] = _Kind.HEADERS
                a.spans[i] = end
                i = end
                continue
            end = _wrapped_attribution_end(lines, a.kinds, singles, i)
            if end is not None and _shorter_attribution(lines, i, end):
                i += 1  # the header starts on a later line: this one is the author's prose
                continue
            if end is not None:
                a.kinds[i] = _Kind.ATTRIBUTION
                a.spans[i] = end
                i = end
                continue
            if _is_footer_rule(lines, i):
                a.kinds[i] = _Kind.FOOTER_RULE
        elif kind is _Kind.ATTRIBUTION:
            a.spans[i] = i + 1
        i += 1
    return a


def _opens_header_block(lines: list[str], i: int) -> bool:
    """True when a header field follows line ``i`` (after at most one blank line)."""
    for j in range(i + 1, min(i + 3, len(lines))):
        if _field(lines[j]) is not None:
            return True
        if _clean(lines[j]):
            return False
    return False


_REWRAP_MIN = 50  # characters of a quoted line that the sender's client must have wrapped
_REWRAP_MAX = 80


def _is_rewrapped_quote(lines: list[str], kinds: list[_Kind], i: int) -> bool:
    """True when line ``i`` is the tail of the quoted line above it, which a client re-wrapped
    without a ">": it goes on in lower case right under a long quoted line, and the quote goes on
    right under it (or the message ends). An answer under a quote starts a sentence of its own,
    or a paragraph: a blank line follows it."""
    s = _clean(lines[i])
    if not s or not s[0].islower() or len(s) > _REWRAP_MAX:
        return False
    if kinds[i - 1] is not _Kind.QUOTE or len(_clean(_dequote(lines[i - 1]))) < _REWRAP_MIN:
        return False
    after = next((k for k in kinds[i + 1:] if k is not _Kind.EMPTY), None)
    if i + 1 < len(kinds) and kinds[i + 1] is _Kind.EMPTY:
        return after is None or after is _Kind.SIGNATURE
    return after in (None, _Kind.QUOTE, _Kind.QUOTED_HEADER, _Kind.SIGNATURE)


def _wrapped_attribution_end(lines: list[str], kinds: list[_Kind], singles: list[bool], i: int) -> int | None:
    first = _clean(lines[i])
    if len(first) > 200:
        return None
    # A header's first line opens like one, holds an address, or holds a date and a time.
    if not (_ATTR_OPENER.match(first) or "@" in first or "<" in first
            or (_TIME.search(first) and _YEAR.search(first))):
        return None
    parts = [first]
    for j in range(i + 1, min(i + _JOIN_LINES, len(lines))):
        if kinds[j] in (_Kind.SIGNATURE, _Kind.FORWARD):
            return None
        part = _clean(_dequote(lines[j]))
        if len(part) > 120:
            return None
        if part:
            parts.append(part)
            if _is_attribution(" ".join(parts)):
                return j + 1
        if singles[j]:  # a header of its own that this line does not complete
            return None
    return None


def _shorter_attribution(lines: list[str], start: int, end: int) -> bool:
    """True when a later line that opens like a quote header ("Op 16 aug. 2014 ...") makes the
    whole header with the lines up to ``end``: the lines before it are then the author's."""
    parts = [_clean(_dequote(line)) for line in lines[start + 1:end]]
    return any(
        _ATTR_OPENER.match(parts[k]) and _is_attribution(" ".join(p for p in parts[k:] if p))
        for k in range(len(parts))
    )


def _is_list_footer(lines: list[str], i: int) -> bool:
    tail = [line for line in lines[i + 1:] if _clean(line)]
    return any(_LIST_FOOTER.search(line) for line in tail[:4])


def _is_footer_rule(lines: list[str], i: int) -> bool:
    """An underscore rule over a signature or a list footer; a short one ("__") only over a footer."""
    if _SHORT_RULE.match(lines[i]):
        return _is_list_footer(lines, i)
    if not _UNDERSCORE_RULE.match(lines[i]):
        return False
    tail = [line for line in lines[i + 1:] if _clean(line)]
    if not tail:
        return False
    if len(tail) <= _SHORT_TAIL:
        return True
    return any(_LIST_FOOTER.search(line) for line in tail[:4])


@dataclass
class _Split:
    kept: list[tuple[_Kind, str]]
    quoted: list[str]  # quoted and forwarded lines, quote markers removed
    forward_only: bool  # nothing of the author's before a forward or header block
    forward_body: list[str]


def _lines(text: str) -> list[str]:
    # No-break and zero-width spaces become plain ones (or nothing) once, here: every pattern
    # can then use plain spaces, and the output is the better for it.
    return text.translate(_SPACES).replace("\r\n", "\n").replace("\r", "\n").split("\n")


def _forward_body(a: _Analysis, start: int) -> list[str]:
    """Lines of a forward after its marker or header block, quote markers and headers removed."""
    lines = a.lines
    i = start
    if a.kinds[i] is _Kind.FORWARD:
        i += 1
        while i < len(lines) and not _clean(lines[i]):
            i += 1
    if i < len(lines):
        end = _header_block_end(lines, i)
        if end is not None:
            i = end
        else:  # some clients put fewer fields than a block needs: skip any leading fields
            while i < len(lines) and _field(lines[i]) is not None:
                i += 1
    return _without_headers([_dequote(line) for line in lines[i:]])


def _without_headers(lines: list[str]) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(lines):
        s = _clean(lines[i])
        end = _header_block_end(lines, i) if s else None
        if end is not None:
            i = end
            continue
        if s and (_is_attribution(s) or _FORWARD.match(s.strip("*_ "))):
            i += 1
            continue
        out.append(lines[i])
        i += 1
    return out


def _split(text: str) -> _Split:
    a = _classify(_lines(text))
    lines, kinds = a.lines, a.kinds
    n = len(lines)
    kept: list[tuple[_Kind, str]] = []
    quoted: list[str] = []
    seen_text = False
    forward_only = False
    forward_body: list[str] = []
    i = 0
    while i < n:
        kind = kinds[i]
        if kind in (_Kind.SIGNATURE, _Kind.FOOTER_RULE):
            break
        if kind in (_Kind.FORWARD, _Kind.HEADERS):
            forward_body = _forward_body(a, i)
            quoted.extend(forward_body)
            forward_only = not seen_text
            break
        if kind is _Kind.ATTRIBUTION:
            end = a.spans.get(i, i + 1)
            if not seen_text:
                # A quote header before anything of the author's: drop it and the quote it opens;
                # unquoted text after it is the author's (Gmail mobile writes below the header).
                i = end
                while i < n and kinds[i] in (_Kind.EMPTY, _Kind.QUOTE, _Kind.QUOTED_HEADER):
                    if kinds[i] is _Kind.QUOTE:
                        quoted.append(_dequote(lines[i]))
                    i += 1
                continue
            if _answered_below(kinds, end):
                i = end  # interleaved reply: the quote it introduces is answered below it
                continue
            quoted.extend(_without_headers([_dequote(line) for line in lines[end:]]))
            break
        if kind is _Kind.QUOTED_HEADER:
            i += 1
            continue
        if kind is _Kind.QUOTE:
            quoted.append(_dequote(lines[i]))
        elif kind is _Kind.TEXT:
            seen_text = True
        kept.append((kind, lines[i]))
        i += 1
    # Whatever trails the author's last line of text is quote, decoration or blank.
    has_text = any(k is _Kind.TEXT and not _DECORATION.match(line) for k, line in kept)
    while kept:
        k, line = kept[-1]
        if k is _Kind.EMPTY or _DECORATION.match(line) or (k is _Kind.QUOTE and has_text):
            kept.pop()
        else:
            break
    return _Split(kept, quoted, forward_only and not has_text, forward_body)


def _answered_below(kinds: list[_Kind], start: int) -> bool:
    """True when a quote starts at ``start`` (after blanks) and the author's text follows it."""
    i = start
    while i < len(kinds) and kinds[i] is _Kind.EMPTY:
        i += 1
    if i >= len(kinds) or kinds[i] is not _Kind.QUOTE:
        return False
    while i < len(kinds) and kinds[i] in (_Kind.EMPTY, _Kind.QUOTE, _Kind.QUOTED_HEADER):
        i += 1
    return i < len(kinds) and kinds[i] is _Kind.TEXT


def _join(lines: list[str]) -> str:
    text = "\n".join(line.rstrip() for line in lines).strip("\n")
    return "" if not any(c.isalnum() for c in text) else text


def _collapse_blank_runs(lines: list[str]) -> list[str]:
    out: list[str] = []
    for line in lines:
        if not line.strip() and out and not out[-1].strip():
            continue
        out.append(line)
    return out


def trim(text: str, *, _depth: int = 0) -> str:
    """The reply with trailing quotes, quote headers, forwards and signatures removed.

    Quotes the author answers below are kept (context for a reader); a bare forward gives the
    forwarded text and a bare quote gives the quote, so an excerpt is never empty for no reason.
    """
    s = _split(text)
    if s.forward_only and _depth == 0:
        return trim("\n".join(s.forward_body), _depth=1)
    return _join([line for _, line in s.kept])


def own_words(text: str) -> str:
    """What the author wrote: ``trim`` without any quoted line; "" for a bare forward."""
    s = _split(text)
    if s.forward_only:
        return ""
    lines = [line for kind, line in s.kept if kind is not _Kind.QUOTE]
    return _join(_collapse_blank_runs(lines))


def forwarded_part(text: str, *, quotes: bool = True) -> str:
    """The quoted and forwarded material, without quote markers, quote headers or header blocks.

    With ``quotes=False`` only an explicit forward (a forward marker or a header block) counts,
    not the quotes of a reply: the policy follows the links a poster forwards, not those of the
    message they answer.
    """
    s = _split(text)
    return _join(_collapse_blank_runs(s.quoted if quotes else s.forward_body))
