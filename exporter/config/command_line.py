"""The command line: flags, then environment, then defaults, into a Config; or a subcommand."""

from __future__ import annotations

import argparse
import difflib
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial
from typing import Any, Final, NoReturn

from exporter import __version__
from exporter.config.flags import FLAGS, PASSWORD_ENV, Config
from exporter.config.values import BOOL_SPELLINGS, DURATION_SPELLINGS, parse_bool
from exporter.errors import ConfigError
from exporter.simulate import command as simulate
from exporter.storage.postgres import command as state


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise ConfigError(message)


class _CommandParser(argparse.ArgumentParser):
    """A subcommand's parser: it reports unknown flags itself, with its own usage."""

    # argparse hands a subcommand's unknown flags to the main parser, whose message would
    # name no subcommand and show no usage; `simulate` has always answered them itself.
    def parse_known_args(
        self, args: Iterable[str] | None = None, namespace: Any = None
    ) -> tuple[Any, list[str]]:
        parsed, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed, extras


def build_parser(prog: str = "sipgate-exporter") -> argparse.ArgumentParser:
    """The argument parser, with each flag's default and environment variable in its help."""
    parser = _Parser(
        prog=prog,
        description="Prometheus exporter for sipgate.io call statistics. Point sipgate.io's "
        "webhook URLs at /webhook and let Prometheus scrape /metrics.",
        epilog=f"Durations: {DURATION_SPELLINGS}. Booleans: {BOOL_SPELLINGS}, in any case; "
        "a boolean flag alone means true. Choices such as --log.level ignore case. Every flag "
        "has an environment variable; a flag wins over the variable, the variable over the "
        "default.",
        # argparse matches abbreviations against a subcommand's flags too, so that
        # `simulate --calls` would be ambiguous with --calls.forward-grace.
        allow_abbrev=False,
    )
    for flag in FLAGS:
        shown = flag.shown_default or (repr(flag.default) if flag.default == "" else flag.default)
        # A boolean flag alone means true, as in `--state.reset`.
        boolean: dict[str, Any] = (
            {"nargs": "?", "const": "true"} if flag.parse is parse_bool else {}
        )
        parser.add_argument(
            f"--{flag.name}",
            dest=flag.field,
            metavar=flag.name.split(".")[-1].upper(),
            help=f"{flag.help} (default: {shown}; env {flag.env})",
            **boolean,
        )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(
        title="commands",
        description=f"without one, the exporter serves; `{prog} COMMAND --help` shows its flags",
        dest="command",
        parser_class=_CommandParser,
    )
    simulate.add_parser(commands)
    state.add_parser(commands)
    return parser


def parse_command(argv: Sequence[str], environ: Mapping[str, str]) -> Config | Callable[[], int]:
    """The Config to serve with, or the subcommand argv names, ready to run; raise ConfigError."""
    _refuse_unknown_flags(argv)
    namespace = build_parser().parse_args(list(argv))
    if namespace.command is None:
        return _config_from(namespace, environ)
    given = [f"--{flag.name}" for flag in FLAGS if getattr(namespace, flag.field) is not None]
    if given:
        raise ConfigError(f"{given[0]} does not apply to {namespace.command}")
    run: Callable[[argparse.Namespace], int] = namespace.run
    namespace.environ = environ  # for a subcommand's own environment variables
    return partial(run, namespace)


def parse_config(argv: Sequence[str], environ: Mapping[str, str]) -> Config:
    """Build the Config from flags, then environment, then defaults; raise ConfigError."""
    command = parse_command(argv, environ)
    if not isinstance(command, Config):
        raise ConfigError("expected the exporter's flags, not a subcommand")
    return command


def _refuse_unknown_flags(argv: Sequence[str]) -> None:
    """Name the first unknown flag before any subcommand, and the flag it may be short for."""
    # argparse would take the value after an unknown flag for a subcommand and complain
    # about that instead (`--web.thr 2`: "invalid choice: '2'").
    known = [f"--{flag.name}" for flag in FLAGS] + ["--help", "--version"]
    value_follows = False
    for arg in argv:
        if arg.startswith("-") and arg != "--":
            name, equals, _ = arg.partition("=")
            if name.startswith("--") and name not in known:
                raise ConfigError(f"unrecognized arguments: {arg}{_did_you_mean(name, known)}")
            value_follows = not equals
        elif value_follows:
            value_follows = False  # the value of the flag before
        else:
            return  # the subcommand, whose parser checks the rest


def _did_you_mean(name: str, known: list[str]) -> str:
    starting = [flag for flag in known if flag.startswith(name)]
    similar = starting if len(starting) == 1 else difflib.get_close_matches(name, known, 1, 0.75)
    return f" (did you mean {similar[0]}?)" if similar else ""


# Flags about the state file, which --state.url replaces.
_FILE_ONLY: Final = frozenset(
    ("state_path", "state_sync", "state_reset", "state_keep_unsigned", "snapshot_interval")
)


# Flags about what only the shared state keeps.
_URL_ONLY: Final = frozenset(("call_records_retention", "call_records_numbers"))


def _config_from(namespace: argparse.Namespace, environ: Mapping[str, str]) -> Config:
    values: dict[str, Any] = {}
    for flag in FLAGS:
        given = getattr(namespace, flag.field)
        source, text = (f"--{flag.name}", given) if given is not None else (flag.env, None)
        if text is None:
            text = environ.get(flag.env, flag.default)
        if text == "" and flag.default == "":
            continue
        try:
            values[flag.field] = flag.parse(text)
        except ValueError as error:
            raise ConfigError(f"{source}: {error}") from None
    _check_security(values, environ)
    _check_state(values, namespace, environ)
    host, port = values.pop("listen")
    return Config(listen_host=host, listen_port=port, **values)


def _check_state(
    values: dict[str, Any], namespace: argparse.Namespace, environ: Mapping[str, str]
) -> None:
    """With --state.url there is no state file: refuse the flags that are about one."""
    if "state_url" not in values:
        for flag in FLAGS:
            if flag.field in _URL_ONLY and (
                getattr(namespace, flag.field) or environ.get(flag.env)
            ):
                raise ConfigError(f"--{flag.name} applies to the call records of --state.url")
        return
    for flag in FLAGS:
        if flag.field not in _FILE_ONLY:
            continue
        if getattr(namespace, flag.field):
            raise ConfigError(
                f"--{flag.name} and --state.url: the state is kept either in a file or in "
                "PostgreSQL; set one"
            )
        if environ.get(flag.env):
            raise ConfigError(
                f"{flag.env} and --state.url: the state is kept either in a file or in "
                f"PostgreSQL; set {flag.env} to empty (the container image sets "
                "SIPGATE_EXPORTER_STATE_PATH)"
            )
    values["state_path"] = None


def _check_security(values: dict[str, Any], environ: Mapping[str, str]) -> None:
    """Take the password from the environment; refuse settings that cannot work together."""
    if environ.get(PASSWORD_ENV):
        if "basic_auth_password" in values:
            raise ConfigError(f"--webhook.basic-auth-password-file and {PASSWORD_ENV}: set one")
        values["basic_auth_password"] = environ[PASSWORD_ENV]
    has_user, has_password = "basic_auth_user" in values, "basic_auth_password" in values
    if has_user and not has_password:
        raise ConfigError(
            "--webhook.basic-auth-user needs a password: "
            f"--webhook.basic-auth-password-file or {PASSWORD_ENV}"
        )
    if has_password and not has_user:
        raise ConfigError("a basic auth password needs --webhook.basic-auth-user")
    if values.get("metrics_address") == values["listen"]:
        raise ConfigError("--web.metrics-address must differ from --web.listen-address")
