"""The posting decision: read the rule table top to bottom, the first hit decides.

Pure: ``decide`` takes ``PostFacts`` and returns a ``Decision`` that records which rule hit and
why, so the reason can be shown to the sender, the moderators and the audit log.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from listserv.models import Action
from listserv.rules import RULES, PostFacts, Rule


@dataclass(frozen=True)
class Decision:
    action: Action
    rule: str
    reason: str

    @property
    def is_automatic_mail(self) -> bool:
        """Mail we must never answer (answering loops and auto-replies makes storms)."""
        return self.rule in ("loop", "auto-generated")


def decide(facts: PostFacts, rules: Sequence[tuple[str, Rule]] = RULES) -> Decision:
    for name, rule in rules:
        hit = rule(facts)
        if hit is not None:
            return Decision(hit.action, name, hit.reason)
    # The table ends with "nonmember", which always answers; reaching here is a bug.
    raise AssertionError("the rule table must end with a rule that always decides")
