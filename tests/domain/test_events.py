"""Parsing of push bodies into typed events."""

from __future__ import annotations

from urllib.parse import parse_qsl

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.domain.events import (
    Answer,
    Dtmf,
    Hangup,
    NewCall,
    UnknownEvent,
    check_content_type,
    form_pairs,
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


@given(st.text(alphabet="ab=&%+2CF8Ä é;", max_size=40) | st.text(max_size=40))
def test_form_pairs_decode_exactly_as_parse_qsl(text: str) -> None:
    try:
        expected = parse_qsl(text, keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        with pytest.raises(UnicodeDecodeError):
            form_pairs(text)
        return
    assert form_pairs(text) == expected
