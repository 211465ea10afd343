"""Parsing of push bodies into typed events."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Final
from urllib.parse import parse_qsl, quote, quote_plus

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.domain.events import (
    DIRECTIONS,
    EVENT_NAMES,
    Answer,
    Dtmf,
    Event,
    Hangup,
    Limits,
    NewCall,
    UnknownEvent,
    check_content_type,
    event_label,
    parse_event,
)
from exporter.errors import InvalidEventError

NEW_CALL_BODY = (
    b"event=newCall&direction=in&from=492111234567&to=4915791234567&callId=123456"
    b"&origCallId=123456&xcid=abc&user%5B%5D=Alice&user%5B%5D=Bob&userId%5B%5D=w0"
    b"&userId%5B%5D=w1&fullUserId%5B%5D=1234567w0&fullUserId%5B%5D=1234567w1"
)


def test_new_call_with_every_field() -> None:
    event = parse_event(NEW_CALL_BODY + b"&diversion=4921100000")
    assert event == NewCall(
        call_id="123456",
        direction="in",
        from_number="492111234567",
        to_number="4915791234567",
        orig_call_id="123456",
        xcid="abc",
        users=("Alice", "Bob"),
        user_ids=("w0", "w1"),
        full_user_ids=("1234567w0", "1234567w1"),
        diversion="4921100000",
    )
    assert isinstance(event, NewCall)
    assert not event.is_voicemail


def test_new_call_single_user_and_utf8_name() -> None:
    event = parse_event(b"event=newCall&direction=out&callId=9&user%5B%5D=J%C3%BCrgen")
    assert isinstance(event, NewCall)
    assert event.users == ("Jürgen",)
    assert event.from_number is None
    assert event.orig_call_id is None
    assert event.diversion is None


def test_raw_utf8_bytes_are_accepted() -> None:
    event = parse_event("event=newCall&direction=in&callId=9&user[]=Jürgen".encode())
    assert isinstance(event, NewCall)
    assert event.users == ("Jürgen",)


def test_voicemail_leg_is_recognised() -> None:
    event = parse_event(b"event=newCall&direction=in&callId=9&user%5B%5D=voicemail")
    assert isinstance(event, NewCall)
    assert event.is_voicemail


def test_answer() -> None:
    body = (
        b"event=answer&direction=in&callId=123456&from=492111234567&to=4915791234567"
        b"&user=Bob&userId=w1&fullUserId=1234567w1&answeringNumber=4921199999"
    )
    event = parse_event(body)
    assert event == Answer(
        call_id="123456",
        direction="in",
        from_number="492111234567",
        to_number="4915791234567",
        user="Bob",
        user_id="w1",
        full_user_id="1234567w1",
        answering_number="4921199999",
    )


def test_answer_by_voicemail() -> None:
    event = parse_event(b"event=answer&direction=in&callId=1&user=voicemail")
    assert isinstance(event, Answer)
    assert event.is_voicemail


def test_hangup_known_and_unknown_cause() -> None:
    event = parse_event(b"event=hangup&direction=in&callId=1&cause=busy&answeringNumber=")
    assert event == Hangup(call_id="1", direction="in", cause="busy")
    assert isinstance(event, Hangup)
    assert event.cause_label == "busy"
    odd = parse_event(b"event=hangup&direction=out&callId=1&cause=solarFlare")
    assert isinstance(odd, Hangup)
    assert odd.cause == "solarFlare"
    assert odd.cause_label == "other"


@pytest.mark.parametrize(
    ("body", "digits"),
    [
        (b"event=dtmf&callId=1&dtmf=0815", "0815"),
        (b"event=dtmf&callId=1&dtmf=", ""),
        (b"event=dtmf&callId=1", ""),
    ],
)
def test_dtmf_keeps_leading_zero_and_allows_empty(body: bytes, digits: str) -> None:
    assert parse_event(body) == Dtmf(call_id="1", digits=digits)


def test_unknown_event_value_is_an_event() -> None:
    assert parse_event(b"event=onData&callId=1") == UnknownEvent(name="onData", call_id="1")


@pytest.mark.parametrize(
    ("body", "reason", "message"),
    [
        (b"", "missing_field", "missing field event"),
        (b"direction=in&callId=1", "missing_field", "missing field event"),
        (b"event=newCall&direction=in", "missing_field", "missing field callId"),
        (b"event=newCall&callId=1", "missing_field", "missing field direction"),
        (b"event=hangup&direction=in&callId=1", "missing_field", "missing field cause"),
        (b"event=&callId=1", "invalid_field", "empty field event"),
        (b"event=newCall&direction=sideways&callId=1", "invalid_field", "direction must be"),
        (b"event=newCall&direction=in&callId=1&user%5B%5D=%FF", "encoding", "not valid UTF-8"),
        (b"event=newCall&direction=in&callId=\xff", "encoding", "not valid UTF-8"),
        (b"event=dtmf&callId=1&x=%C3%28", "encoding", "not valid UTF-8"),
    ],
)
def test_invalid_bodies(body: bytes, reason: str, message: str) -> None:
    with pytest.raises(InvalidEventError, match=message) as caught:
        parse_event(body)
    assert caught.value.reason == reason
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    "content_type",
    [
        "application/x-www-form-urlencoded",
        "application/x-www-form-urlencoded; charset=UTF-8",
        "Application/X-WWW-Form-Urlencoded;charset=utf-8",
    ],
)
def test_form_content_types_pass(content_type: str) -> None:
    check_content_type(content_type)


@pytest.mark.parametrize(
    ("content_type", "message"),
    [
        (None, "got none"),
        ("", "got none"),
        ("application/json", "got application/json"),
        ("multipart/form-data; boundary=x", "got multipart/form-data"),
        ("application/x-www-form-urlencoded; charset=ISO-8859-1", "charset must be UTF-8"),
    ],
)
def test_other_content_types_fail(content_type: str | None, message: str) -> None:
    with pytest.raises(InvalidEventError, match=message) as caught:
        check_content_type(content_type)
    assert caught.value.reason == "content_type"


@pytest.mark.parametrize(
    ("sent", "received"),
    [
        (b"a+b", "a b"),
        (b"a%2Bb", "a+b"),
        (b"a%20b", "a b"),
        (b"100%", "100%"),
        (b"%zz%4", "%zz%4"),
        (b"J%C3%BCrgen", "Jürgen"),
        (b"x=y", "x=y"),
    ],
)
def test_plus_and_percent_decode_like_a_browser_form(sent: bytes, received: str) -> None:
    event = parse_event(b"event=newCall&direction=in&callId=1&from=" + sent)
    assert isinstance(event, NewCall)
    assert event.from_number == received


def test_last_value_wins_and_repeated_values_keep_their_order() -> None:
    body = (
        b"event=answer&direction=out&callId=1&user=Alice&callId=2&direction=in&user=Bob"
        b"&event=newCall&user%5B%5D=Carol&user[]=&user%5B%5D=Alice&from=1&from="
    )
    event = parse_event(body)
    assert isinstance(event, NewCall)
    assert (event.call_id, event.direction) == ("2", "in")
    assert event.users == ("Carol", "", "Alice")
    assert event.from_number is None


def test_fields_without_equals_sign_or_empty_are_blank() -> None:
    assert parse_event(b"&&event=dtmf&callId=1&dtmf&") == Dtmf(call_id="1")


FIVE_FIELDS: Final = b"event=newCall&direction=in&callId=1&from=2&to=3"


@pytest.mark.parametrize(
    ("body", "max_fields", "expected"),
    [
        (FIVE_FIELDS, 5, NewCall("1", "in", from_number="2", to_number="3")),
        (b"event=dtmf&callId=1&", 3, Dtmf("1")),
    ],
)
def test_exactly_max_fields_are_allowed(body: bytes, max_fields: int, expected: Event) -> None:
    assert parse_event(body, Limits(max_fields=max_fields)) == expected


@pytest.mark.parametrize(
    ("body", "max_fields"),
    [
        (FIVE_FIELDS, 4),
        (FIVE_FIELDS + b"&", 5),  # empty fields count too, as on the raw bytes
        (b"&&", 2),
        (b"event=dtmf&callId=1", 1),
    ],
)
def test_one_field_more_than_max_fields_is_refused(body: bytes, max_fields: int) -> None:
    with pytest.raises(InvalidEventError, match=f"^more than {max_fields} form fields$") as caught:
        parse_event(body, Limits(max_fields=max_fields))
    assert caught.value.reason == "too_many_fields"


def test_field_limit_comes_before_the_utf8_check() -> None:
    with pytest.raises(InvalidEventError, match="more than 2 form fields") as caught:
        parse_event(b"event=dtmf&callId=\xff&dtmf=%ff", Limits(max_fields=2))
    assert caught.value.reason == "too_many_fields"


@pytest.mark.parametrize(("users", "allowed"), [(3, True), (4, False)])
def test_user_limit_at_its_edge(users: int, allowed: bool) -> None:
    body = b"event=newCall&direction=in&callId=1" + b"&user%5B%5D=Alice" * users
    if allowed:
        event = parse_event(body, Limits(max_users=3))
        assert isinstance(event, NewCall)
        assert event.users == ("Alice",) * users
        return
    with pytest.raises(InvalidEventError, match=r"^more than 3 user\[\] values$") as caught:
        parse_event(body, Limits(max_users=3))
    assert caught.value.reason == "too_many_fields"


def test_user_limit_comes_before_the_direction_check() -> None:
    body = b"event=newCall&callId=1" + b"&user%5B%5D=Alice" * 4
    with pytest.raises(InvalidEventError, match="user") as caught:
        parse_event(body, Limits(max_users=3))
    assert caught.value.reason == "too_many_fields"


# --- Properties of parse_event -----------------------------------------------------------------

REASONS: Final = {"missing_field", "invalid_field", "encoding", "too_many_fields"}
TOKENS: Final = (
    *(b"event=" + name.encode() for name in (*EVENT_NAMES, "ping", "")),
    b"callId=1",
    b"direction=in",
    b"direction=up",
    b"cause=busy",
    b"user%5B%5D=a",
    b"user[]=J\xc3\xbcrgen",
    b"from=a+b%2B",
    b"%",
    b"%zz",
    b"%C3%28",
    b"%ff",
    b"\xff",
    b"\xc3",
    b"+",
    b"=",
    b"",
)
form_like = st.lists(st.sampled_from(TOKENS) | st.binary(max_size=6), max_size=14).map(b"&".join)


@given(form_like | st.binary(max_size=200), st.integers(1, 12), st.integers(1, 3))
def test_any_body_is_an_event_or_an_invalid_event_error(
    body: bytes, max_fields: int, max_users: int
) -> None:
    try:
        outcome: Event | InvalidEventError = parse_event(body, Limits(max_fields, max_users))
    except InvalidEventError as error:
        outcome = error
    too_many = body.count(b"&") >= max_fields
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        utf8 = False
    else:
        utf8 = True
    if isinstance(outcome, InvalidEventError):
        assert outcome.reason in REASONS
        assert "\n" not in str(outcome)
        assert (str(outcome) == f"more than {max_fields} form fields") == too_many
        assert outcome.reason == "encoding" or utf8 or too_many
    else:
        assert not too_many
        assert utf8
        assert isinstance(outcome, NewCall | Answer | Hangup | Dtmf | UnknownEvent)


encoded = st.lists(
    st.sampled_from((b"a", b"=", b"+", b"%", b"%2B", b"%3D", b"%C3%BC", b"%ff", b"\xc3\xbc"))
    | st.binary(max_size=3),
    max_size=5,
).map(b"".join)
dtmf_field = st.tuples(st.sampled_from((b"dtmf", b"dtmf=", b"callId=", b"d%74mf=")), encoded)


@given(st.lists(dtmf_field.map(b"".join) | encoded, max_size=5).map(b"&".join))
def test_fields_decode_as_the_standard_library_decodes_them(fields: bytes) -> None:
    body = b"event=dtmf&callId=1&" + fields
    try:
        expected = dict(parse_qsl(body.decode(), keep_blank_values=True, errors="strict"))
    except UnicodeError:
        with pytest.raises(InvalidEventError, match="not valid UTF-8"):
            parse_event(body)
        return
    if not expected["callId"]:
        return  # refused for the empty callId, not for its encoding
    assert parse_event(body) == Dtmf(expected["callId"], expected.get("dtmf", ""))


FORM_NAMES: Final = {
    "name": "event",
    "call_id": "callId",
    "direction": "direction",
    "cause": "cause",
    "from_number": "from",
    "to_number": "to",
    "orig_call_id": "origCallId",
    "xcid": "xcid",
    "diversion": "diversion",
    "users": "user[]",
    "user_ids": "userId[]",
    "full_user_ids": "fullUserId[]",
    "user": "user",
    "user_id": "userId",
    "full_user_id": "fullUserId",
    "answering_number": "answeringNumber",
    "digits": "dtmf",
}

text = st.text(st.characters(codec="utf-8"), max_size=10)
word = st.text(st.characters(codec="utf-8"), min_size=1, max_size=10)
maybe = st.none() | word
many = st.lists(text, max_size=4).map(tuple)
# The fields that newCall, answer and hangup all carry.
leg = {
    "call_id": word,
    "direction": st.sampled_from(DIRECTIONS),
    "from_number": maybe,
    "to_number": maybe,
    "orig_call_id": maybe,
    "xcid": maybe,
    "diversion": maybe,
}
events = st.one_of(
    st.builds(NewCall, users=many, user_ids=many, full_user_ids=many, **leg),
    st.builds(Answer, user=maybe, user_id=maybe, full_user_id=maybe, answering_number=maybe, **leg),
    st.builds(Hangup, cause=word, answering_number=maybe, **leg),
    st.builds(Dtmf, call_id=word, digits=text),
    st.builds(UnknownEvent, name=word.filter(lambda name: name not in EVENT_NAMES), call_id=word),
)


def _pair(draw: st.DrawFn, name: str, value: str) -> bytes:
    """One field, percent-encoded one of three ways, or raw where that is unambiguous."""
    encode: Callable[[str], str] = draw(
        st.sampled_from((quote_plus, lambda part: quote(part, safe=""), str))
    )
    if encode is str and any(char in name + value for char in "&=+%"):
        encode = quote_plus
    if not value and draw(st.booleans()):
        return encode(name).encode()
    return f"{encode(name)}={encode(value)}".encode()


@st.composite
def urlencoded(draw: st.DrawFn, event: Event) -> bytes:
    """The event as sipgate could send it: any field order, stale values, unknown fields."""
    values: dict[str, list[str]] = {}
    if not isinstance(event, UnknownEvent):
        values["event"] = [event_label(event)]
    for field in dataclasses.fields(event):
        value = getattr(event, field.name)
        name = FORM_NAMES[field.name]
        if isinstance(value, tuple):
            values[name] = list(value)
        elif value is None or value == "":
            values[name] = draw(st.sampled_from(([], [""])))
        else:
            values[name] = [value]
        if not isinstance(value, tuple) and values[name] and draw(st.booleans()):
            values[name].insert(0, draw(text))  # an earlier value, overridden by the last
    for name in draw(st.lists(word.filter(lambda name: name not in FORM_NAMES.values()))):
        values.setdefault(name, []).append(draw(text))
    names = draw(st.permutations([name for name, sent in values.items() for _ in sent]))
    fields = [_pair(draw, name, values[name].pop(0)) for name in names]
    return draw(st.sampled_from((b"", b"&"))) + b"&".join(fields)


@given(st.data(), events)
def test_urlencoded_events_parse_back_to_themselves(data: st.DataObject, event: Event) -> None:
    body = data.draw(urlencoded(event))
    assert parse_event(body) == event
