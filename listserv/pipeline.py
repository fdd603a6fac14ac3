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
    # Mail we must never answer (answering loops and auto-replies makes storms): taken from
    # the facts (``PostFacts.never_answer``), whichever rule decided.
    is_automatic_mail: bool = False


def reaches(facts: PostFacts, rule: str, rules: Sequence[tuple[str, Rule]] = RULES) -> bool:
    """Whether reading the table for ``facts`` gets as far as ``rule`` (no earlier rule hits).

    A fact that is costly to gather and read only by ``rule`` (the participation policy's) is
    gathered only then: loops, automatic mail and bans never cost a body parse.
    """
    names = [name for name, _ in rules]
    if rule not in names:
        raise ValueError(f"there is no rule called {rule!r} in the table")
    return all(earlier(facts) is None for _, earlier in rules[:names.index(rule)])


def decide(facts: PostFacts, rules: Sequence[tuple[str, Rule]] = RULES) -> Decision:
    for name, rule in rules:
        hit = rule(facts)
        if hit is not None:
            return Decision(hit.action, name, hit.reason, is_automatic_mail=facts.never_answer)
    # The table ends with "nonmember", which always answers; reaching here is a bug.
    raise AssertionError("the rule table must end with a rule that always decides")
