"""Parse sipgate.io push bodies into typed, immutable events."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final
from urllib.parse import unquote

from exporter.errors import InvalidEventError

IN: Final = "in"
OUT: Final = "out"
DIRECTIONS: Final = (IN, OUT)

VOICEMAIL_USER: Final = "voicemail"

NORMAL_CLEARING: Final = "normalClearing"
FORWARDED: Final = "forwarded"
KNOWN_CAUSES: Final = (
    NORMAL_CLEARING,
    "busy",
    "cancel",
    "noAnswer",
    "congestion",
    "notFound",
    FORWARDED,
)

NEW_CALL: Final = "newCall"
ANSWER: Final = "answer"
HANGUP: Final = "hangup"
DTMF: Final = "dtmf"
EVENT_NAMES: Final = (NEW_CALL, ANSWER, HANGUP, DTMF)

FORM_CONTENT_TYPE: Final = "application/x-www-form-urlencoded"
TOO_MANY_FIELDS: Final = "too_many_fields"


@dataclass(frozen=True, slots=True)
class NewCall:
    """A call leg started ringing."""

    call_id: str
    direction: str
    from_number: str | None = None
    to_number: str | None = None
    orig_call_id: str | None = None
    xcid: str | None = None
    users: tuple[str, ...] = ()
    user_ids: tuple[str, ...] = ()
    full_user_ids: tuple[str, ...] = ()
    diversion: str | None = None

    @property
    def is_voicemail(self) -> bool:
        """Whether this leg rings only the voicemail."""
        return self.users == (VOICEMAIL_USER,)


@dataclass(frozen=True, slots=True)
class Answer:
    """Someone picked up a leg."""

    call_id: str
    direction: str
    from_number: str | None = None
    to_number: str | None = None
    user: str | None = None
    user_id: str | None = None
    full_user_id: str | None = None
    answering_number: str | None = None
    diversion: str | None = None
    orig_call_id: str | None = None
    xcid: str | None = None

    @property
    def is_voicemail(self) -> bool:
        """Whether the voicemail took the call."""
        return self.user == VOICEMAIL_USER


@dataclass(frozen=True, slots=True)
class Hangup:
    """A leg ended; `cause` is kept as sent, known or not."""

    call_id: str
    direction: str
    cause: str
    from_number: str | None = None
    to_number: str | None = None
    answering_number: str | None = None
    diversion: str | None = None
    orig_call_id: str | None = None
    xcid: str | None = None

    @property
    def cause_label(self) -> str:
        """The cause as a bounded label value: one of the known causes or `other`."""
        return self.cause if self.cause in KNOWN_CAUSES else "other"


@dataclass(frozen=True, slots=True)
class Dtmf:
    """Digits typed after a Gather; may be empty."""

    call_id: str
    digits: str = ""


@dataclass(frozen=True, slots=True)
class UnknownEvent:
    """An `event` value this exporter does not know; acknowledged and counted only."""

    name: str
    call_id: str


Event = NewCall | Answer | Hangup | Dtmf | UnknownEvent


@dataclass(frozen=True, slots=True)
class Limits:
    """How many form fields, and repeated `user[]` values, one body may have."""

    max_fields: int = 100
    max_users: int = 50


DEFAULT_LIMITS: Final = Limits()


def event_label(event: Event) -> str:
    """The bounded `event` label of a valid event: one of EVENT_NAMES or `unknown`."""
    if isinstance(event, NewCall):
        return NEW_CALL
    if isinstance(event, Answer):
        return ANSWER
    if isinstance(event, Hangup):
        return HANGUP
    if isinstance(event, Dtmf):
        return DTMF
    return "unknown"


def check_content_type(content_type: str | None) -> None:
    """Raise InvalidEventError unless the content type is UTF-8 form encoding."""
    media_type, _, params = (content_type or "").partition(";")
    if media_type.strip().lower() != FORM_CONTENT_TYPE:
        shown = media_type.strip() or "none"
        message = f"content type must be {FORM_CONTENT_TYPE}, got {shown}"
        raise InvalidEventError("content_type", message)
    for param in params.split(";"):
        key, _, value = param.partition("=")
        charset = value.strip().strip('"').lower()
        if key.strip().lower() == "charset" and charset not in ("utf-8", "utf8"):
            raise InvalidEventError("content_type", f"charset must be UTF-8, got {value.strip()}")


def parse_event(body: bytes, limits: Limits = DEFAULT_LIMITS) -> Event:
    """Parse a form-encoded push body; raise InvalidEventError with a one-line reason."""
    fields = _Fields(_form_pairs(body, limits.max_fields))
    name = fields.required("event")
    call_id = fields.required("callId")
    if name == NEW_CALL:
        users = fields.repeated("user[]")
        if len(users) > limits.max_users:
            message = f"more than {limits.max_users} user[] values"
            raise InvalidEventError(TOO_MANY_FIELDS, message)
        return NewCall(
            call_id,
            fields.direction(),
            users=users,
            user_ids=fields.repeated("userId[]"),
            full_user_ids=fields.repeated("fullUserId[]"),
            **fields.copied(_NEW_CALL_FIELDS),
        )
    if name == ANSWER:
        return Answer(call_id, fields.direction(), **fields.copied(_ANSWER_FIELDS))
    if name == HANGUP:
        direction = fields.direction()
        return Hangup(call_id, direction, fields.required("cause"), **fields.copied(_HANGUP_FIELDS))
    if name == DTMF:
        return Dtmf(call_id, fields.optional("dtmf") or "")
    return UnknownEvent(name, call_id)


# Optional form fields copied as sent, None when missing or empty: form name -> dataclass field.
_NEW_CALL_FIELDS: Final = {
    "from": "from_number",
    "to": "to_number",
    "origCallId": "orig_call_id",
    "xcid": "xcid",
    "diversion": "diversion",
}
_HANGUP_FIELDS: Final = {**_NEW_CALL_FIELDS, "answeringNumber": "answering_number"}
_ANSWER_FIELDS: Final = {
    **_HANGUP_FIELDS,
    "user": "user",
    "userId": "user_id",
    "fullUserId": "full_user_id",
}


def _form_pairs(body: bytes, max_fields: int) -> list[tuple[str, str]]:
    """Decode a form body into (name, value) pairs in order, `+` and `%XX` decoded, empty
    fields skipped and a missing `=` read as an empty value, as `parse_qsl` does."""
    # Fields are counted before UTF-8 is checked, so an oversized body is too_many_fields
    # whatever its bytes. Surrogates stand for invalid bytes and make the encode below fail.
    text = body.decode("utf-8", "surrogateescape")
    if text.count("&") >= max_fields:
        raise InvalidEventError(TOO_MANY_FIELDS, f"more than {max_fields} form fields")
    pairs = []
    try:
        text.encode("utf-8")
        # Decoded only where needed: bench/RESULTS.md, "Form fields decoded where needed".
        for field in text.split("&"):
            if not field:
                continue
            name, _, value = field.partition("=")
            if "+" in field:
                name = name.replace("+", " ")
                value = value.replace("+", " ")
            if "%" in field:
                name = unquote(name, errors="strict")
                value = unquote(value, errors="strict")
            pairs.append((name, value))
    except UnicodeError:
        raise InvalidEventError("encoding", "body is not valid UTF-8 form data") from None
    return pairs


class _Fields:
    """Lookup over decoded form pairs; the last value wins for singular keys."""

    __slots__ = ("_pairs", "_single")

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._pairs = pairs
        self._single = dict(pairs)

    def optional(self, key: str) -> str | None:
        value = self._single.get(key)
        return value if value else None

    def copied(self, names: Mapping[str, str]) -> dict[str, str | None]:
        return {attribute: self.optional(key) for key, attribute in names.items()}

    def required(self, key: str) -> str:
        value = self._single.get(key)
        if value is None:
            raise InvalidEventError("missing_field", f"missing field {key}")
        if not value:
            raise InvalidEventError("invalid_field", f"empty field {key}")
        return value

    def repeated(self, key: str) -> tuple[str, ...]:
        return tuple(value for name, value in self._pairs if name == key)

    def direction(self) -> str:
        value = self.required("direction")
        if value not in DIRECTIONS:
            message = f"direction must be in or out, got {value[:20]!r}"
            raise InvalidEventError("invalid_field", message)
        return value
