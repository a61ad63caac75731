"""CloudWatch Logs filter patterns for unstructured events. Pure.

Supported: terms and quoted phrases that must all appear (`ERROR "disk full"`), `?term` of which
at least one must appear (`?ERROR ?WARN`), `-term` that must not appear, and the empty pattern
that matches everything. Matching is case-sensitive, as CloudWatch Logs matches. JSON
(`{ $.x = 1 }`) and space-delimited (`[a, b]`) patterns are refused with
InvalidParameterException, since a wrong match would be worse than an error.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from miniecs.errors import InvalidParameterException


@dataclass(frozen=True, slots=True)
class FilterPattern:
    required: tuple[str, ...] = ()
    any_of: tuple[str, ...] = ()
    excluded: tuple[str, ...] = ()

    def matches(self, message: str) -> bool:
        if any(term in message for term in self.excluded):
            return False
        if not all(term in message for term in self.required):
            return False
        return not self.any_of or any(term in message for term in self.any_of)


def parse_filter(pattern: str) -> FilterPattern:
    text = pattern.strip()
    if text.startswith(("{", "[")):
        raise InvalidParameterException(
            "miniecs supports term and phrase filter patterns only, not JSON or space-delimited "
            "patterns."
        )
    if len(pattern) > 1024:
        raise InvalidParameterException(
            "1 validation error detected: Value at 'filterPattern' failed to satisfy constraint: "
            "Member must have length less than or equal to 1024"
        )
    lexer = shlex.shlex(text, posix=True)
    lexer.whitespace_split = True
    lexer.commenters = ""
    try:
        words = list(lexer)
    except ValueError:
        raise InvalidParameterException("Invalid filter pattern: unbalanced quotes.") from None
    required, any_of, excluded = [], [], []
    for word in words:
        if word.startswith("?") and len(word) > 1:
            any_of.append(word[1:])
        elif word.startswith("-") and len(word) > 1:
            excluded.append(word[1:])
        elif word:
            required.append(word)
    return FilterPattern(tuple(required), tuple(any_of), tuple(excluded))
