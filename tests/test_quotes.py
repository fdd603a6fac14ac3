"""Quote stripping: the discourse answer key as a floor, and small probes of our own."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.quotes import DISCOURSE, measure, normalise
from listserv.quotes import count_words, forwarded_part, own_words, trim

# Figures reached when this was written (64/64, F1 1.000 for trim; 58/64, F1 0.952 for
# own_words, whose misses are by design: it drops the interleaved quotes the key keeps, and
# gives nothing for a bare forward). Floors sit a little below so a regression fails.
TRIM_EXACT_FLOOR = 62
TRIM_F1_FLOOR = 0.97
OWN_WORDS_EXACT_FLOOR = 56
OWN_WORDS_F1_FLOOR = 0.93


def test_discourse_answer_key_trim(corpus: Path) -> None:
    fig = measure(trim, corpus / DISCOURSE.name, repeat=1)
    print(f"trim discourse_exact={fig.exact}/{fig.total} f1={fig.f1:.3f} misses={list(fig.misses)}")
    assert fig.total == 64
    assert fig.exact >= TRIM_EXACT_FLOOR
    assert fig.f1 >= TRIM_F1_FLOOR


def test_discourse_answer_key_own_words(corpus: Path) -> None:
    fig = measure(own_words, corpus / DISCOURSE.name, repeat=1)
    print(f"own_words discourse_exact={fig.exact}/{fig.total} f1={fig.f1:.3f} misses={list(fig.misses)}")
    assert fig.exact >= OWN_WORDS_EXACT_FLOOR
    assert fig.f1 >= OWN_WORDS_F1_FLOOR
    # The misses are the cases where the key keeps quoted text or a forward: nothing else.
    assert set(fig.misses) <= {
        "embedded_email_16.txt", "embedded_email_17.txt", "embedded_email_7.txt",
        "forwarded_message.txt", "quote_and_text.txt", "quote_only.txt",
    }


NBSP, NNBSP = "\u00a0", "\u202f"

# (name, mail body, expected own words)
PROBES: list[tuple[str, str, str]] = [
    ("top-posted",
     "Yes, Thursday works for us.\n\nOn Mon, 3 Mar 2025 at 10:02, Ann Lee <ann@example.org> wrote:\n"
     "> Can we meet on Thursday?\n> Ann\n",
     "Yes, Thursday works for us."),
    ("top-posted, header wrapped over two lines",
     "Agreed.\n\nOn Mon, 3 Mar 2025 at 10:02, Ann Lee <\nann@example.org> wrote:\n\n> Shall we?\n",
     "Agreed."),
    ("bottom-posted",
     "On 3 March 2025 10:02, Ann Lee wrote:\n> Can we meet on Thursday?\n\nThursday is fine.\n",
     "Thursday is fine."),
    ("interleaved",
     "Ann Lee <ann@example.org> wrote:\n> First question?\n\nFirst answer.\n\n> Second question?\n\n"
     "Second answer.\n\n> Thanks\n",
     "First answer.\n\nSecond answer."),
    ("interleaved after the author's greeting",
     "Hi Ann,\nOn Tue, 2011-03-01 at 18:02 +0530, Ann Lee wrote:\n> Is it ready?\n\nIt is.\n",
     "Hi Ann,\n\nIt is."),
    ("German header",
     "Danke, passt.\n\nAm 03.02.2025 um 15:35 schrieb Max Mustermann <max@example.de>:\n\n> Geht das?\n",
     "Danke, passt."),
    ("French header with no-break spaces",
     f"Merci beaucoup.\n\nLe 4 janv. 2025 à 19:03, Neil <neil@example.fr> a{NBSP}écrit{NNBSP}:\n\n"
     "> Bonjour\n",
     "Merci beaucoup."),
    ("French header wrapped over three lines",
     'C\'est super !\nLe 4 janv. 2016 19:03, "Neil Lalonde"\n<info@example.fr>\na écrit :\n\n> Bonjour\n',
     "C'est super !"),
    ("Spanish header",
     "Gracias, lo reviso.\n\nEl jueves, 21 de noviembre de 2013, Pablo escribió:\n\n> ¿Funciona?\n",
     "Gracias, lo reviso."),
    ("Dutch header",
     'Goed idee.\nOp 16 aug. 2014 05:13 schreef "Piet" <piet@example.nl> het\nvolgende geschreven:\n\n'
     "> Zullen we?\n",
     "Goed idee."),
    ("Outlook block",
     "See the attached.\n\n-----Original Message-----\nFrom: Ann Lee\nSent: Monday, March 3, 2025 10:02\n"
     "To: Team\nSubject: Figures\n\nCan you send the figures?\n",
     "See the attached."),
    ("Outlook header block with an underscore rule",
     "Done.\n________________________________\nFrom: Ann Lee <ann@example.org>\n"
     "Sent: Thursday, 28 January 2025 8:16 p.m.\nTo: Team\nSubject: Task\n\nPlease do it.\n",
     "Done."),
    ("French Outlook block",
     "Bien reçu.\n\nDe : Anne <anne@example.fr>\nEnvoyé : lundi 3 mars 2025 10:02\nÀ : Équipe\n"
     "Objet : Chiffres\n\nPouvez-vous envoyer les chiffres ?\n",
     "Bien reçu."),
    ("German Outlook block",
     "Erledigt.\n\nVon: Max <max@example.de>\nGesendet: Montag, 3. März 2025 10:02\nAn: Team\n"
     "Betreff: Zahlen\n\nBitte schicken.\n",
     "Erledigt."),
    ("dash-dash-space signature",
     "The meeting is at ten.\n\n-- \nAnn Lee\nhttps://ann.example.org\n",
     "The meeting is at ten."),
    ("mobile signature",
     "On my way.\n\nSent from my iPhone\n",
     "On my way."),
    ("Get Outlook for iOS",
     "Noted, thanks.\n\nGet Outlook for iOS<https://aka.ms/o0ukef>\n",
     "Noted, thanks."),
    ("a sentence that starts like a mobile signature",
     "Here it is.\n\nSent from my desk, which is much easier than from my phone.\n",
     "Here it is.\n\nSent from my desk, which is much easier than from my phone."),
    ("From: in the author's own text",
     "Please set the sender like this:\n\nFrom: Parish Council <clerk@example.org>\nTo: residents\n\n"
     "and nothing else.\n",
     "Please set the sender like this:\n\nFrom: Parish Council <clerk@example.org>\nTo: residents\n\n"
     "and nothing else."),
    ("forwarded message with a covering line",
     "FYI, the announcement below.\n\n---------- Forwarded message ---------\nFrom: Press Office "
     "<press@example.gov.uk>\nDate: Tue, 4 Mar 2025 at 09:00\nSubject: New guidance\nTo: <ann@example.org>"
     "\n\nThe department today published new guidance.\n",
     "FYI, the announcement below."),
    ("bare forward",
     "---------- Forwarded message ---------\nFrom: Press Office <press@example.gov.uk>\n"
     "Date: Tue, 4 Mar 2025 at 09:00\nSubject: New guidance\nTo: <ann@example.org>\n\n"
     "The department today published new guidance.\n",
     ""),
    ("list footer",
     "Agreed.\n\n_______________________________________________\nGovtools mailing list\n"
     "govtools@lists.example.org\nhttps://lists.example.org/listinfo/govtools\n",
     "Agreed."),
    ("On at the start of a sentence is not a quote header",
     "On this day\n\nI wrote something\n\nwhich was very interesting.\n\nOn 28 Jan 2016, at 19:04, Some One "
     "wrote:\n\n> Did you write something interesting?\n",
     "On this day\n\nI wrote something\n\nwhich was very interesting."),
]


@pytest.mark.parametrize(("name", "body", "want"), PROBES, ids=[p[0] for p in PROBES])
def test_probe(name: str, body: str, want: str) -> None:
    assert normalise(own_words(body)) == normalise(want)


def test_forwarded_part_is_the_forward_without_headers() -> None:
    body = PROBES[19][1]
    assert forwarded_part(body) == "The department today published new guidance."


def test_forwarded_part_of_a_quoted_reply_drops_markers_and_headers() -> None:
    body = "Agreed.\n\nOn Mon, 3 Mar 2025 at 10:02, Ann <ann@example.org> wrote:\n> Line one\n>\n> Line two\n"
    assert forwarded_part(body) == "Line one\n\nLine two"
    assert forwarded_part("Just my words.\n") == ""


def test_trim_keeps_interleaved_quotes_and_bare_forwards() -> None:
    # The quote right under a leading quote header goes (as in the discourse key); later ones stay.
    assert normalise(trim(PROBES[3][1])) == normalise("First answer.\n\n> Second question?\n\nSecond answer.")
    assert trim(PROBES[20][1]) == "The department today published new guidance."
    assert trim("> only a quote\n") == "> only a quote"
    assert own_words("> only a quote\n") == ""


def test_count_words() -> None:
    assert count_words("") == 0
    assert count_words("Don't panic: it's 42 -- really.") == 5
    assert count_words(own_words(PROBES[0][1])) == 5


def test_windows_line_ends_and_surrounding_blank_lines() -> None:
    assert own_words("\r\n\r\nHello\r\nthere\r\n\r\n") == "Hello\nthere"
