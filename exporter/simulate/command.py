"""`sipgate-exporter simulate`: parse its flags, play the traffic, print what was sent."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Final, TypeVar

from exporter.config.values import parse_duration
from exporter.simulate.playback import RefusedError, play
from exporter.simulate.sender import Sender, load_signing_key
from exporter.simulate.traffic import TrafficPlanner, TrafficProfile

_SUMMARY: Final = "send planned sipgate.io traffic to a running exporter"
_DESCRIPTION: Final = (
    "Send realistic sipgate.io webhook traffic to a running exporter and print "
    "what was sent per outcome."
)
_ParserT = TypeVar("_ParserT", bound=argparse.ArgumentParser)


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
    """Flags of `sipgate-exporter simulate`, as a parser of its own."""
    parser = argparse.ArgumentParser(
        prog="sipgate-exporter simulate", description=_DESCRIPTION, allow_abbrev=False
    )
    _add_arguments(parser)
    return parser


def add_parser(subparsers: argparse._SubParsersAction[_ParserT]) -> None:
    """Add `simulate` to the exporter's subcommands; the parsed namespace's `run` runs it."""
    parser = subparsers.add_parser(
        "simulate", help=_SUMMARY, description=_DESCRIPTION, allow_abbrev=False
    )
    _add_arguments(parser)
    parser.set_defaults(run=run)


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the simulator's flags to `parser`."""
    defaults = TrafficProfile()
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
        (
            "short-abandon-probability",
            defaults.short_abandon_probability,
            "share of missed incoming calls where the caller hangs up within 4 s",
        ),
        (
            "slow-answer-probability",
            defaults.slow_answer_probability,
            "share of answered incoming calls that wait 21 s to 5 min (past a 20 s target)",
        ),
        (
            "unnamed-answer-probability",
            defaults.unnamed_answer_probability,
            "share of answered incoming calls taken by no named user (queue, pickup)",
        ),
        (
            "call-again-probability",
            defaults.call_again_probability,
            "share of incoming calls from a caller owed a callback, while one is",
        ),
        (
            "callback-probability",
            defaults.callback_probability,
            "share of outgoing calls returning a missed call, while one is owed",
        ),
    ):
        add(f"--{name}", type=_probability, default=default, help=f"{what} (default: %(default)s)")


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
        short_abandon_probability=args.short_abandon_probability,
        slow_answer_probability=args.slow_answer_probability,
        unnamed_answer_probability=args.unnamed_answer_probability,
        call_again_probability=args.call_again_probability,
        callback_probability=args.callback_probability,
    )


def run(args: argparse.Namespace) -> int:
    """Run the simulator with parsed flags; exit status 1 if any request failed."""
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
    print(f"simulating to {sender.target} at speed {args.speed:g}, {bound}", file=sys.stderr)
    try:
        bounds = (args.calls, args.duration)
        tally = play(planner, sender, args.speed, *bounds, sys.stderr, args.progress_interval)
    except RefusedError as refused:
        print(f"sipgate-exporter simulate: error: {refused}", file=sys.stderr)
        return 1
    print(tally.summary())
    return 1 if tally.errors else 0


def main(argv: Sequence[str]) -> int:
    """Parse `argv` and run the simulator; exit status 1 if any request failed."""
    return run(build_parser().parse_args(list(argv)))
