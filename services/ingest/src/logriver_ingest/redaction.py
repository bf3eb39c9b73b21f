"""Secrets are masked in the gateway, before an event is published, so nothing
downstream (storage, live tail, alert notifications) ever sees them.

Two mechanisms: regex rules over the message and every string in metadata, and
metadata keys whose whole value is masked (``password``, ``token``, ...).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from typing import Any

from logriver_common.event import LogEvent
from logriver_common.event_rule import Event
from logriver_ingest.settings import RedactionRule

MASK = "[REDACTED]"
MASKED_KEY_RULE = "metadata_key"
_NON_DIGITS = re.compile(r"\D")


def luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if position % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


# Card numbers have 13 to 19 digits; fewer digits in the whole text cannot hold one.
_MIN_CARD_DIGITS = 13
_MAX_REMEMBERED_KEYS = 10_000


class _CompiledRule:
    __slots__ = ("hints", "luhn", "name", "pattern", "replacement")

    def __init__(self, rule: RedactionRule) -> None:
        self.name = rule.name
        self.pattern = re.compile(rule.pattern)
        self.replacement = rule.replacement
        self.luhn = rule.luhn
        self.hints = tuple(h.lower() for h in rule.hints)

    def apply(self, text: str, counts: Counter[str]) -> str:
        if not self.luhn:
            redacted, n = self.pattern.subn(self.replacement, text)
            if n:
                counts[self.name] += n
            return redacted

        def replace_if_luhn(match: re.Match[str]) -> str:
            if not luhn_valid(_NON_DIGITS.sub("", match.group(0))):
                return match.group(0)
            counts[self.name] += 1
            return match.expand(self.replacement)

        return self.pattern.sub(replace_if_luhn, text)


class Redactor:
    def __init__(self, rules: Iterable[RedactionRule], masked_keys: Iterable[str]) -> None:
        self._rules = [_CompiledRule(rule) for rule in rules]
        self._masked_keys = tuple(_normalise_key(k) for k in masked_keys)
        # Metadata keys repeat from event to event; remember the verdict per key.
        self._key_verdicts: dict[str, bool] = {}
        # The gate of the common case, where no rule can apply to any string of an event:
        # every hint of every hinted rule in one alternation, searched once in the
        # lowered text (the same test as `hint in lowered`, one C call for all hints).
        hints = sorted({h for rule in self._rules for h in rule.hints}, key=len, reverse=True)
        self._any_hint = re.compile("|".join(map(re.escape, hints))) if hints else None
        self._has_luhn = any(rule.luhn for rule in self._rules)
        # A rule without hints and without Luhn runs on every string: no gate then.
        self._ungated = any(not rule.hints and not rule.luhn for rule in self._rules)

    def _may_apply(self, strings: list[str]) -> bool:
        """False only when no rule would run on any of ``strings``.

        Hints are searched once in the strings joined by NUL: a hint in one of them
        is a hint in the whole (NUL is no cased letter, so lowering the whole lowers
        each part alike). Digits are counted string by string: a card number lies
        within one string, and summing would send every digit-rich event the long way.
        """
        if self._ungated:
            return True
        if self._any_hint is not None:
            text = strings[0] if len(strings) == 1 else "\x00".join(strings)
            if self._any_hint.search(text.lower()) is not None:
                return True
        if self._has_luhn:
            for text in strings:
                if len(text) >= _MIN_CARD_DIGITS and _digits(text) >= _MIN_CARD_DIGITS:
                    return True
        return False

    def _gather(self, value: Any, strings: list[str]) -> bool:
        """Collect the strings of metadata; True as soon as a key is one to mask."""
        if isinstance(value, dict):
            verdicts = self._key_verdicts
            for key, item in value.items():
                verdict = verdicts.get(key)
                if verdict is None:
                    verdict = self.masks_key(key)
                if verdict:
                    return True
                if isinstance(item, str):
                    strings.append(item)
                elif isinstance(item, dict | list) and self._gather(item, strings):
                    return True
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, str):
                    strings.append(item)
                elif isinstance(item, dict | list) and self._gather(item, strings):
                    return True
        return False

    def redact_text(self, text: str, counts: Counter[str]) -> str:
        # The pre-checks of may_match(), inlined: this runs for every string of every event.
        lowered = text.lower()
        digits = -1
        for rule in self._rules:
            if rule.hints:
                for hint in rule.hints:
                    if hint in lowered:
                        break
                else:
                    continue
            if rule.luhn:
                if len(text) < _MIN_CARD_DIGITS:
                    continue
                if digits < 0:
                    digits = _digits(text)
                if digits < _MIN_CARD_DIGITS:
                    continue
            text = rule.apply(text, counts)
        return text

    def masks_key(self, key: str) -> bool:
        verdict = self._key_verdicts.get(key)
        if verdict is None:
            normalised = _normalise_key(key)
            # A substring match, so `db_password` and `access_token` are masked too.
            verdict = any(masked in normalised for masked in self._masked_keys)
            if len(self._key_verdicts) >= _MAX_REMEMBERED_KEYS:
                self._key_verdicts.clear()
            self._key_verdicts[key] = verdict
        return verdict

    def redact_value(self, value: Any, counts: Counter[str]) -> Any:
        if isinstance(value, str):
            return self.redact_text(value, counts)
        if isinstance(value, dict):
            out: dict[str, Any] = {}
            for key, item in value.items():
                if self.masks_key(key):
                    counts[MASKED_KEY_RULE] += 1
                    out[key] = MASK
                elif isinstance(item, str):
                    out[key] = self.redact_text(item, counts)
                elif isinstance(item, dict | list):
                    out[key] = self.redact_value(item, counts)
                else:  # numbers, booleans, null: nothing to mask, no call needed
                    out[key] = item
            return out
        if isinstance(value, list):
            return [self.redact_value(item, counts) for item in value]
        return value

    def redact_event(self, event: Event | LogEvent, counts: Counter[str]) -> None:
        """Mask secrets in the event's message and metadata, in place.

        Most events hold nothing to mask: one gate over all their strings at once
        (and the cached verdicts of their metadata keys) settles that; only an
        event that passes it takes the string-by-string path.
        """
        strings = [event.message]
        masked_key = bool(event.metadata) and self._gather(event.metadata, strings)
        if not masked_key and not self._may_apply(strings):
            return
        event.message = self.redact_text(event.message, counts)
        if event.metadata:
            event.metadata = self.redact_value(event.metadata, counts)


def _digits(text: str) -> int:
    """ASCII digits in ``text`` (bytes.translate: several times faster than str.translate)."""
    raw = text.encode("utf-8", "surrogatepass")
    return len(raw) - len(raw.translate(None, b"0123456789"))


def _normalise_key(key: str) -> str:
    return key.lower().replace("-", "_")
