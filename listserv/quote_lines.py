"""How a line of a mail body reads, for ``quotes``: the vocabulary of mail clients.

Quote markers, quote headers ("On <date>, <someone> wrote:" and its forms in other languages and
clients, with or without a verb), forward markers, header blocks over a quoted or forwarded
message, mobile sign-offs and footer rules, as patterns and small predicates over one line (or a
few lines from a given index). Pure functions over strings; no I/O.

Invariants: lines come in normalised (no-break spaces made plain, line ends split: see
``quotes``); a predicate looks at most a dozen lines beyond the one it is asked about; a line of
prose that merely holds a date, a time or an address is never a quote header on that ground alone.
"""

from __future__ import annotations

import re

# Characters that mail clients and HTML-to-text put where a plain space was meant.
SPACES = str.maketrans({"\u00a0": " ", "\u202f": " ", "\u2007": " ", "\u200b": "", "\ufeff": ""})

QUOTE = re.compile(r"^[ \t]*(?:>|[A-Z]{1,3}>)")
DEQUOTE = re.compile(r"^[ \t]*(?:(?:>|[A-Z]{1,3}>)[ \t]?)+")
DECORATION = re.compile(r"^[\s\-_=+~#*ᐧ—–•·]*$")
SIG_DASHES = re.compile(r"^--\s*$")
UNDERSCORE_RULE = re.compile(r"^\s*_{5,}\s*$")
SHORT_RULE = re.compile(r"^\s*_{2,4}\s*$")  # "__" over a list footer (some list servers)
LIST_FOOTER = re.compile(r"mailing list|listinfo|mailman|unsubscribe|list-?info", re.IGNORECASE)

# "wrote" and its translations. Used at the end of a quote header ("On ..., X wrote:").
# A gendered form may follow in brackets: "napisał(a)", "написал(а)", "napísal(a)".
VERB_END = (
    r"(?:(?:wrote|writes|a\s+écrit|a\s+ecrit|nous\s+a\s+dit|schrieben\s+Sie|schrieb|geschrieben|"
    r"escribió|escribio|schreef|geschreven|escreveu|ha\s+scritto|a\s+scris|napisał|napisal|"
    r"skrev|написала?|пишет|пише|kirjoitti|napsala?|napísala?|yazdı|írta|έγραψε|님이\s*작성|写道)"
    r"(?:\(\w{1,3}\))?)"
)
ATTR_VERB_END = re.compile(rf"(?:^|[\s,\"'>)]){VERB_END}\s*[:：]?\s*$", re.IGNORECASE)
# Verb before the name or the date: "Am 3.2.2016 schrieb Max <m@x>:", "Max <m@x> schrieb am Fr.,
# 28. Apr. 2017 um 11:53 Uhr:", "Op 16 aug. 2014 05:13 schreef "x" <y>:", "Den ... skrev J <j@x>:".
ATTR_VERB_MID = re.compile(
    r"\b(?:wrote|schrieb|schreef|skrev|escribió|odesílatel|írta|kirjoitti)\b.{1,160}[:：]\s*$", re.IGNORECASE)
# How a quote header opens: a preposition, a date, or a weekday's short name and a day
# ("Mon, 3", "ср, 30", "pe 20.", "man. 3.", "mån 3": Gmail in most languages).
ATTR_OPENER = re.compile(
    r"^(?:On|At|In message|Le|Am|El|Op|Em|Il|Dnia|Dňa|Den|søn\.|\d|[A-Za-zÀ-ÿА-яё]+,\s*\d"
    r"|[^\W\d_]{1,4}\.?\s+\d|在)\b",
    re.IGNORECASE,
)
# A quote header with no verb: a date, a time and the quoted person's address, ending in a
# colon ("ср, 30 апр. 2025 г. в 15:19, Иван <i@x.ru>:", "30.09.2017, 18.30, "A" <a@x>:").
# All three together: a line of prose that merely holds a date is never cut.
TIME = re.compile(r"(?<!\d)\d{1,2}[:.]\d\d(?!\d)")
YEAR = re.compile(r"(?<!\d)(?:19|20)\d\d(?!\d)|(?<!\d)\d{1,2}[./-]\d{1,2}[./-]\d\d(?!\d)")
ADDRESS_COLON_END = re.compile(r"[<(\s\"'][^<>()\s@\"']+@[^<>()\s\"']+[>)]?\s*[:：]$")
DIGIT = re.compile(r"\d")
DATE_OR_ADDRESS = re.compile(r"[\d@]")
ANGLE_ADDRESS = re.compile(r"<[^<>\s]*@")
GMAIL_ISO = re.compile(r"^\d{4}-\d\d-\d\d \d{1,2}:\d\d GMT[+-]\d{1,2}:\d\d\b")
DATE_ADDRESS = re.compile(r"^\d{4}[-/.]\d{1,2}[-/.]\d{1,2}\b.{0,120}<[^<>\s@]+@[^<>\s]+>\s*:?\s*$")

FORWARD = re.compile(
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
FROM_FIELDS = r"from|de|von|van|da|fra|från|od|от|lähettäjä|feladó|kimden|afzender|发件人|expéditeur"
DATE_FIELDS = (r"sent|date|envoyé|gesendet|datum|data|dato|enviado|enviada em|fecha|skickat|sendt|"
                r"verzonden|inviato|elküldve|"
                r"lähetetty|päivämäärä|дата|отправлено|odesláno|wysłano|dátum|tarih|gönderildi|"
                r"message du|发送时间|日期")
TO_FIELDS = r"to|à|a|an|aan|para|till|til|komu|кому|do|vastaanottaja|címzett|kime|收件人|destinataire"
SUBJECT_FIELDS = (r"subject|objet|sujet|betreff|onderwerp|oggetto|asunto|assunto|ämne|emne|aihe|тема|"
                   r"předmět|temat|tárgy|konu|主题")
OTHER_FIELDS = (r"cc|bcc|reply-to|répondre à|risposta|kopie|kopia|kopio|копия|copie à|copie|"
                 r"beantwoorden - aan")
FIELD = re.compile(
    r"^\s*\**\s*(?P<name>"
    + "|".join((FROM_FIELDS, DATE_FIELDS, TO_FIELDS, SUBJECT_FIELDS, OTHER_FIELDS))
    + r")\s*\**\s*[:：]\s*\**(?P<value>.*)$",
    re.IGNORECASE,
)
# "Message du 03/03/25 10:02" (French webmail) opens a block with no colon after its name.
MESSAGE_DU = re.compile(r"^\s*(?P<name>message du)\s+(?P<value>\d.*)$", re.IGNORECASE)
# A short phrase between dashes ("-------- Oprindelig besked --------") is a forward marker in
# any language when a header block follows it.
DASHED_PHRASE = re.compile(r"^-{2,}\s*[^\W\d_][^-]{2,40}?\s*-{2,}$")
FROM_NAME = re.compile(rf"^(?:{FROM_FIELDS})$", re.IGNORECASE)
DATE_NAME = re.compile(rf"^(?:{DATE_FIELDS})$", re.IGNORECASE)
TO_NAME = re.compile(rf"^(?:{TO_FIELDS})$", re.IGNORECASE)
SUBJECT_NAME = re.compile(rf"^(?:{SUBJECT_FIELDS})$", re.IGNORECASE)

MOBILE = re.compile(
    r"^[(<\s]*(?:sent (?:from|via|with|by|using) \S"
    r"|from my (?:iphone|ipad|ipod|android|mobile|phone|samsung|galaxy|blackberry|huawei|pixel)"
    r"|\w+ from mobile\b|get outlook for |envoyé depuis (?:mon|ma|yahoo)|von meinem .+ gesendet"
    r"|diese nachricht wurde von .+ gesendet|inviato da |sendt fra min |enviado (?:desde|do) (?:mi|meu) "
    r"|verzonden (?:met|vanaf) |verstuurd (?:met|vanaf) mijn |skickat från min |från min "
    r"|從我的 iphone 傳送|来自我的|发自我的"
    # "Sent from ..." in other languages, naming a device or a mail app: "Gesendet von Outlook
    # für Android", "Envoyé de mon iPhone", "Envoyé à partir de Courrier pour Windows",
    # "Отправлено с iPhone", "Lähetetty iPhonesta" ("Envoyé de Paris." is prose).
    r"|(?:(?:gesendet|envoyé|enviado|inviato|verzonden|verstuurd|skickat|sendt|отправлено|wysłane|"
    r"odesláno|poslano|trimis|gönderildi)\s+(?:von|vom|de|depuis|à partir de|desde|do|da|dal|mit|"
    r"met|vanaf|via|från|fra|med|z|ze|с|из|din|from)\s|lähetetty\s)"
    r".{0,40}?(?:iphone|ipad|android|outlook|mail|courrier|windows|samsung|galaxy|mobile|smartphone|"
    r"handy|yahoo|blackberry|huawei|xiaomi|pixel|\bapp\b)"
    # "Get Outlook for iOS" in any language: Outlook and a mobile system on one short line.
    r"|.{0,40}\boutlook\b.{0,25}\b(?:ios|android)\b)",
    re.IGNORECASE,
)
MARKDOWN_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
ANGLE_URL = re.compile(r"<https?://[^>]*>")
MAX_ATTRIBUTION = 300  # characters; a real quote header is one sentence, never a paragraph
JOIN_LINES = 5  # a quote header wrapped by the sender's client: at most this many lines
SHORT_TAIL = 6  # non-empty lines after an underscore rule that make it a signature or footer


def clean(line: str) -> str:
    return line.strip()  # no-break spaces are already plain ones (``quotes._lines``)


def dequote(line: str) -> str:
    return DEQUOTE.sub("", line, count=1)


def has_date_or_address(s: str) -> bool:
    """``DATE_OR_ADDRESS.search(s)``, without the regex for ASCII text: substring scans run in C
    at memchr speed, where the character class steps through each character (3 µs for a
    300-character line of prose, the common case, issue 12)."""
    if "@" in s:
        return True
    if s.isascii():  # then the only digits \d can match are these ten
        return any(d in s for d in "0123456789")
    return DATE_OR_ADDRESS.search(s) is not None


def is_attribution(candidate: str) -> bool:
    # A date or an address is what tells "On Monday, Bob wrote:" apart from prose.
    if len(candidate) > MAX_ATTRIBUTION + 20 or not has_date_or_address(candidate):
        return False
    s = candidate.strip().strip("-*_ \t").strip()
    if not s or len(s) > MAX_ATTRIBUTION:
        return False
    if GMAIL_ISO.match(s) or DATE_ADDRESS.match(s):
        return True
    if ADDRESS_COLON_END.search(s) and TIME.search(s) and YEAR.search(s):
        return True
    if ATTR_VERB_END.search(s):
        return True
    mid = ATTR_VERB_MID.search(s)
    if mid is None:
        return False
    if ATTR_OPENER.match(s) or ANGLE_ADDRESS.search(s):
        return True
    # "Ann Lee kirjoitti 3.3.2025 klo 10.02:": a name (capitalised words, not a lone "I"), the
    # verb, then a date and a time.
    name, after = s[:mid.start()].split(), s[mid.start():]
    return (2 <= len(name) <= 5 and all(w[0].isupper() for w in name)
            and bool(TIME.search(after) and YEAR.search(after)))


def is_mobile_signature(line: str) -> bool:
    # Each substitution only when its pattern can match ("](" and "<http" are literal parts of
    # them): most lines hold neither, and the two scans cost more than the match below.
    s = clean(line)
    if "](" in s:
        s = MARKDOWN_LINK.sub(r"\1", s)
    if "<http" in s:
        s = ANGLE_URL.sub("", s)
    if not MOBILE.match(s):
        return False
    # "Sent from my desk, is much easier than my phone." is a sentence, not a signature.
    words = s.split()
    return len(words) <= 8 or bool(re.search(r"excuse|typo", s, re.IGNORECASE))


def header_field(line: str) -> tuple[str, str] | None:
    # FIELD needs a colon (either width): most lines of prose are refused without the regex.
    m = (FIELD.match(line) if ":" in line or "：" in line else None) or MESSAGE_DU.match(line)
    if m is None or not m.group("value").strip(" *"):
        return None
    return m.group("name").lower(), m.group("value")


def header_block_end(lines: list[str], start: int) -> int | None:
    """End (exclusive) of a header block starting at ``start``, or None when it is not one."""
    first = header_field(lines[start])
    if first is None or not (FROM_NAME.match(first[0]) or DATE_NAME.match(first[0])):
        return None
    names = [first[0]]
    has_date = False
    i = start + 1
    while i < len(lines) and i - start < 12:
        f = header_field(lines[i])
        if f is not None:
            names.append(f[0])
            has_date = has_date or (DATE_NAME.match(f[0]) is not None and DIGIT.search(f[1]) is not None)
        elif not clean(lines[i]):
            break
        elif not (i + 1 < len(lines) and header_field(lines[i + 1]) is not None):
            break  # a wrapped value (a long Subject) is only kept when another field follows
        i += 1
    has_from = any(FROM_NAME.match(n) for n in names)
    has_to = any(TO_NAME.match(n) for n in names)
    has_subject = any(SUBJECT_NAME.match(n) for n in names)
    if not FROM_NAME.match(first[0]):
        # Opened by a date ("Message du : ..."): an event's "Date: / From: 9.30 / To: 12.30" is
        # no header block; a quoted one names its subject too.
        return i if has_from and has_subject else None
    if has_date or (has_to and has_subject):
        return i
    return None


def opens_header_block(lines: list[str], i: int) -> bool:
    """True when a header block follows line ``i`` (after at most one blank line): a heading
    over an event's "Date: / Time: / Place:" lines is not a forward marker."""
    for j in range(i + 1, min(i + 3, len(lines))):
        if clean(lines[j]):
            return header_block_end(lines, j) is not None
    return False


def is_list_footer(lines: list[str], i: int) -> bool:
    tail = [line for line in lines[i + 1:] if clean(line)]
    return any(LIST_FOOTER.search(line) for line in tail[:4])


def is_footer_rule(lines: list[str], i: int) -> bool:
    """An underscore rule over a signature or a list footer; a short one ("__") only over a footer."""
    if SHORT_RULE.match(lines[i]):
        return is_list_footer(lines, i)
    if not UNDERSCORE_RULE.match(lines[i]):
        return False
    tail = [line for line in lines[i + 1:] if clean(line)]
    if not tail:
        return False
    if len(tail) <= SHORT_TAIL:
        return True
    return any(LIST_FOOTER.search(line) for line in tail[:4])
