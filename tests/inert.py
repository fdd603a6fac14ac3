"""A checker that served or rendered HTML is inert: what a hostile mail must never leave behind.

Parses with the standard library's HTMLParser (as lenient as a browser about tag soup) and lists
every problem: script-like elements, event handler attributes, style attributes or elements in
the body, dangerous URL schemes, images or media fetched from elsewhere, and refresh/base tags.
Our own page furniture (a stylesheet, a script or form under our own path, in the head) passes.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

ACTIVE = {"script", "iframe", "frame", "frameset", "object", "embed", "applet", "base", "form",
          "input", "button", "textarea", "select", "svg", "math", "video", "audio", "source",
          "picture", "link", "meta", "style", "plaintext", "xmp", "noscript"}
URL_ATTRS = {"href", "src", "action", "formaction", "srcset", "poster", "background", "data",
             "ping", "cite", "xlink:href"}
_BAD_SCHEME = re.compile(r"^(?:javascript|vbscript|data|file):", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x20]+")


class _Checker(HTMLParser):
    def __init__(self, own_prefixes: tuple[str, ...]) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []
        self.in_body = False
        self.own = own_prefixes
        self.own_form = False  # inside a form posting to our own path (search, subscribe)

    def _own(self, value: str | None) -> bool:
        return bool(value) and value.startswith(self.own) and not value.startswith("//")  # type: ignore[union-attr]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k.lower(): v for k, v in attrs}
        if tag == "body":
            self.in_body = True
        if tag == "form":
            self.own_form = self._own(a.get("action"))
        for name, value in attrs:
            name = name.lower()
            if name.startswith("on"):
                self.problems.append(f"<{tag} {name}=…>: an event handler")
            if name == "style":
                self.problems.append(f"<{tag} style=…>: a style attribute")
            if name in URL_ATTRS and value is not None:
                v = _CONTROL.sub("", value)
                if _BAD_SCHEME.match(v) and not (tag == "link" and v == "data:,"):
                    self.problems.append(f"<{tag} {name}={value!r}>: a dangerous scheme")
                if tag in ("img", "source", "video", "audio", "input") and name in (
                        "src", "srcset", "poster") and not self._own(v):
                    self.problems.append(f"<{tag} {name}={value!r}>: fetched from elsewhere")
                if name in ("background", "poster", "srcset", "ping"):
                    self.problems.append(f"<{tag} {name}=…>: fetched from elsewhere")
        if tag in ACTIVE:
            ours = ((tag == "script" and self._own(a.get("src")) and not self.in_body)
                    or (tag == "link" and (self._own(a.get("href")) or a.get("href") == "data:,"))
                    or (tag == "meta" and "http-equiv" not in a)
                    or (tag == "style" and not self.in_body)
                    or (tag == "button" and a.get("type") == "button" and "data-copy" in a)
                    or (tag == "svg" and a.get("class") == "chart" and a.get("role") == "img")
                    or (tag in ("form", "input", "button", "select", "textarea") and self.own_form
                        and not a.get("formaction")))
            if not ours:
                self.problems.append(f"<{tag}>: active or page-level element")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.own_form = False


def problems(html: str, own_prefixes: tuple[str, ...] = ("/",)) -> list[str]:
    """Everything in ``html`` that is not inert (empty when it is)."""
    checker = _Checker(own_prefixes)
    checker.feed(html)
    checker.close()
    return checker.problems
