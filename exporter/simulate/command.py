"""`sipgate-exporter simulate`: send planned sipgate.io traffic to a running exporter."""

from __future__ import annotations

import argparse
import base64
import heapq
import http.client
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TextIO
from urllib.parse import unquote, urlsplit

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from exporter.config.flags import parse_duration
from exporter.simulate.traffic import PlannedCall, PlannedEvent, TrafficPlanner, TrafficProfile
from exporter.web.guard import SIGNATURE_HEADER, basic_auth_token, read_key_file


def load_signing_key(path: str) -> RSAPrivateKey:
    """The RSA private key in an unencrypted PEM file; raise ValueError naming the file."""
    pem = read_key_file(path)
    try:
        key = load_pem_private_key(pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ValueError(f"key file {path!r} is not an unencrypted PEM private key") from None
    if not isinstance(key, RSAPrivateKey):
        raise ValueError(f"key file {path!r} is not an RSA key")
    return key


def sign_body(key: RSAPrivateKey, body: bytes) -> str:
    """The X-Sipgate-Signature of `body`: base64 RSA-SHA256 PKCS#1 v1.5, as sipgate signs."""
    return base64.b64encode(key.sign(body, PKCS1v15(), SHA256())).decode()


class Sender:
    """POSTs form bodies over one kept-alive HTTP connection, reconnecting once on failure.

    Credentials in the target URL become basic auth; with `sign_key` every body is signed.
    """

    def __init__(
        self, target: str, timeout: float = 10.0, sign_key: RSAPrivateKey | None = None
    ) -> None:
        parts = urlsplit(target)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"invalid target {target!r} (use e.g. http://localhost:9850/webhook)")
        self._path = parts.path or "/webhook"
        host, port = parts.hostname, parts.port
        self._connect: Callable[[], http.client.HTTPConnection] = (
            (lambda: http.client.HTTPSConnection(host, port, timeout=timeout))
            if parts.scheme == "https"
            else (lambda: http.client.HTTPConnection(host, port, timeout=timeout))
        )
        self._headers = {
            "Content-Type": "application/x-www-form-urlencoded; charset=UTF-8",
            "User-Agent": "sipgate-exporter-simulator",
        }
        if parts.username is not None:
            token = basic_auth_token(unquote(parts.username), unquote(parts.password or ""))
            self._headers["Authorization"] = "Basic " + token.decode()
        self._sign_key = sign_key
        self._connection: http.client.HTTPConnection | None = None

    def post(self, body: bytes) -> tuple[int, bytes]:
        """Send one event; return the status and body of the reply."""
        for attempt in (1, 2):
            if self._connection is None:
                self._connection = self._connect()
            try:
                self._connection.request("POST", self._path, body, self._request_headers(body))
                reply = self._connection.getresponse()
                return reply.status, reply.read()
            except (OSError, http.client.HTTPException):
                self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _request_headers(self, body: bytes) -> dict[str, str]:
        if self._sign_key is None:
            return self._headers
        return {**self._headers, SIGNATURE_HEADER: sign_body(self._sign_key, body)}

    def close(self) -> None:
        """Drop the connection."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None


@dataclass
class Tally:
    """What was sent: calls by (direction, outcome) once all their events went out."""

    calls: Counter[tuple[str, str]] = field(default_factory=Counter)
    events: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    started: int = 0

    @property
    def in_flight(self) -> int:
        """Calls started whose last event is not sent yet."""
        return self.started - sum(self.calls.values())

    def progress_line(self, elapsed: float) -> str:
        """A one-line progress report."""
        return (
            f"[{elapsed:6.1f}s] calls started {self.started}, completed {sum(self.calls.values())}"
            f", events sent {sum(self.events.values())}, errors {sum(self.errors.values())}"
        )

    def summary(self) -> str:
        """The table printed at the end, to compare with the dashboard."""
        lines = ["direction  outcome     calls"]
        lines += [
            f"{direction:<10} {outcome:<11} {count:>5}"
            for (direction, outcome), count in sorted(self.calls.items())
        ]
        lines.append(f"total                  {sum(self.calls.values()):>5}")
        if self.in_flight:
            lines.append(f"interrupted before their last event: {self.in_flight} calls")
        events = ", ".join(f"{name} {count}" for name, count in sorted(self.events.items()))
        lines.append(f"events sent: {events or 'none'}")
        errors = ", ".join(f"{name} {count}" for name, count in sorted(self.errors.items()))
        lines.append(f"errors: {errors or 'none'}")
        return "\n".join(lines)


@dataclass(order=True)
class _Pending:
    at: float
    serial: int
    event: PlannedEvent = field(compare=False)
    call: PlannedCall = field(compare=False)
    last: bool = field(compare=False)


def run(
    planner: TrafficPlanner,
    sender: Sender,
    speed: float,
    max_calls: int | None = None,
    duration: float | None = None,
    progress: TextIO | None = None,
    progress_interval: float = 10.0,
) -> Tally:
    """Send planned calls in real time divided by `speed` until a bound or an interrupt."""
    tally = Tally()
    heap: list[_Pending] = []
    serial = 0
    calls = iter(planner)
    upcoming: PlannedCall | None = next(calls)
    started = time.monotonic()
    next_progress = started + progress_interval
    try:
        while True:
            while upcoming is not None and (not heap or upcoming.events[0].at <= heap[0].at):
                out_of_time = duration is not None and upcoming.events[0].at / speed > duration
                if out_of_time or (max_calls is not None and tally.started >= max_calls):
                    upcoming = None
                    break
                tally.started += 1
                for index, event in enumerate(upcoming.events):
                    serial += 1
                    last = index == len(upcoming.events) - 1
                    heapq.heappush(heap, _Pending(event.at, serial, event, upcoming, last))
                upcoming = next(calls)
            if not heap:
                break
            pending = heapq.heappop(heap)
            due = started + pending.at / speed
            while (now := time.monotonic()) < due or now >= next_progress:
                if now >= next_progress:
                    if progress is not None:
                        print(tally.progress_line(now - started), file=progress, flush=True)
                    next_progress += progress_interval
                else:
                    time.sleep(min(due, next_progress) - now)
            _send(sender, pending, tally)
    except KeyboardInterrupt:
        pass
    finally:
        sender.close()
    return tally


def _send(sender: Sender, pending: _Pending, tally: Tally) -> None:
    event = pending.event
    try:
        status, reply = sender.post(event.body)
    except (OSError, http.client.HTTPException):
        tally.errors["connection"] += 1
        return
    tally.events[event.name] += 1
    if status != 200:
        tally.errors[f"http_{status}"] += 1
    elif event.name == "newCall" and b"onHangup=" not in reply:
        tally.errors["no_subscription"] += 1
    if pending.last:
        tally.calls[(pending.call.direction, pending.call.outcome)] += 1


def _probability(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not between 0 and 1")
    return value


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} is not positive")
    return value


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def build_parser() -> argparse.ArgumentParser:
    """Flags of `sipgate-exporter simulate`."""
    defaults = TrafficProfile()
    parser = argparse.ArgumentParser(
        prog="sipgate-exporter simulate",
        description="Send realistic sipgate.io webhook traffic to a running exporter and print "
        "what was sent per outcome.",
    )
    add = parser.add_argument
    add(
        "--target",
        default="http://localhost:9850/webhook",
        help="webhook URL; http://user:password@host/webhook sends basic auth "
        "(default: %(default)s)",
    )
    add(
        "--sign-key",
        metavar="PATH",
        help="PEM RSA private key to sign each body with, for an exporter whose "
        "--webhook.signature-key is its public key (default: unsigned)",
    )
    add(
        "--rate",
        type=_positive,
        default=defaults.calls_per_minute,
        help="new calls per simulated minute (default: %(default)s)",
    )
    add(
        "--speed",
        type=_positive,
        default=1.0,
        help="simulated seconds per real second; wait and talk times shrink by it "
        "(default: %(default)s)",
    )
    add(
        "--seed",
        type=int,
        default=1,
        help="random seed; the same seed sends the same traffic (default: %(default)s)",
    )
    add("--calls", type=int, help="stop after this many calls")
    add(
        "--duration",
        type=_duration,
        help="stop starting calls after this long (real time, e.g. 5m)",
    )
    add(
        "--progress-interval",
        type=_duration,
        default=10.0,
        help="seconds between progress lines on stderr (default: %(default)s)",
    )
    for name, default, what in (
        ("incoming-share", defaults.incoming_share, "share of calls that are incoming"),
        ("answer-probability", defaults.answer_probability, "share answered by a person"),
        (
            "voicemail-probability",
            defaults.voicemail_probability,
            "share of unanswered incoming calls that reach the voicemail",
        ),
        ("busy-probability", defaults.busy_probability, "share of unanswered incoming calls busy"),
        (
            "forward-probability",
            defaults.forward_probability,
            "share of answered incoming calls forwarded to a new leg first",
        ),
        (
            "transfer-probability",
            defaults.transfer_probability,
            "share of answered incoming calls transferred",
        ),
        (
            "group-probability",
            defaults.group_probability,
            "share of incoming calls ringing a group",
        ),
        (
            "anonymous-probability",
            defaults.anonymous_probability,
            "share of incoming calls with a suppressed number",
        ),
        (
            "lost-followup-probability",
            defaults.lost_followup_probability,
            "share of incoming calls whose follow-up events never arrive (they expire)",
        ),
    ):
        add(f"--{name}", type=_probability, default=default, help=f"{what} (default: %(default)s)")
    return parser


def profile_from(args: argparse.Namespace) -> TrafficProfile:
    """The traffic profile the flags describe."""
    return TrafficProfile(
        calls_per_minute=args.rate,
        incoming_share=args.incoming_share,
        answer_probability=args.answer_probability,
        voicemail_probability=args.voicemail_probability,
        busy_probability=args.busy_probability,
        forward_probability=args.forward_probability,
        transfer_probability=args.transfer_probability,
        group_probability=args.group_probability,
        anonymous_probability=args.anonymous_probability,
        lost_followup_probability=args.lost_followup_probability,
    )


def main(argv: Sequence[str]) -> int:
    """Run the simulator; exit status 1 if any request failed."""
    args = build_parser().parse_args(list(argv))
    try:
        sign_key = load_signing_key(args.sign_key) if args.sign_key else None
        sender = Sender(args.target, sign_key=sign_key)
    except ValueError as error:
        print(f"sipgate-exporter simulate: error: {error}", file=sys.stderr)
        return 2
    planner = TrafficPlanner(profile_from(args), args.seed)
    bound = (
        f"{args.calls} calls"
        if args.calls
        else (f"{args.duration:g}s" if args.duration else "until interrupted")
    )
    parts = urlsplit(args.target)
    shown = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()  # no password
    print(f"simulating to {shown} at speed {args.speed:g}, {bound}", file=sys.stderr)
    tally = run(
        planner, sender, args.speed, args.calls, args.duration, sys.stderr, args.progress_interval
    )
    print(tally.summary())
    return 1 if tally.errors else 0
