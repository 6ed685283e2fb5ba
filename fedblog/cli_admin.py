"""``fedblog admin set-password`` and the admin password step of ``fedblog init``.

The password comes from, in order: ``--password-file FILE`` (``-`` reads standard input; one
trailing newline is dropped), the ``FEDBLOG_ADMIN_PASSWORD`` environment variable, or, in a
terminal, a hidden prompt asked twice (``getpass``). Scripts never hang on a prompt: without a
terminal and without a file or variable, ``set-password`` fails with a one-line error and
``init`` only prints how to set it later.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from pathlib import Path

from fedblog.admin.auth import has_password, set_password
from fedblog.admin.passwords import PasswordRuleError, check_rules
from fedblog.cli_errors import CliError
from fedblog.services import Services

ENV_PASSWORD = "FEDBLOG_ADMIN_PASSWORD"
Opener = Callable[[], AbstractContextManager[Services]]


def _from_file(name: str) -> str:
    if name == "-":
        text = sys.stdin.read()
    else:
        path = Path(name)
        if not path.is_file():
            raise CliError(f"{path}: no such file: give a file that holds the admin password on one line")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise CliError(f"{path}: not UTF-8 text: save the password file as UTF-8") from None
    return text.removesuffix("\n").removesuffix("\r")


def _prompt(optional: bool) -> str | None:
    hint = " (Enter to skip)" if optional else ""
    first = getpass.getpass(f"Admin password for /admin{hint}: ")
    if not first and optional:
        return None
    try:
        check_rules(first)
    except PasswordRuleError as exc:
        raise CliError(str(exc)) from None
    if getpass.getpass("Same password again: ") != first:
        raise CliError("the two passwords differ: run the command again")
    return first


def read_password(file: str | None, env: Mapping[str, str], *, optional: bool) -> str | None:
    """The new password from a file, the environment ``env`` or a terminal prompt; None if there is none."""
    if file:
        password: str | None = _from_file(file)
    elif env.get(ENV_PASSWORD):
        password = env[ENV_PASSWORD]
    elif sys.stdin.isatty():
        password = _prompt(optional)
    else:
        return None
    if password is not None:
        try:
            check_rules(password)
        except PasswordRuleError as exc:
            raise CliError(str(exc)) from None
    return password


def _store(services: Services, password: str) -> None:
    ended = set_password(services, password)
    note = f"; {ended} browser session(s) logged out" if ended else ""
    print(f"Admin password set{note}. Log in at {services.settings.base_url}/admin")


def cmd_set_password(args: argparse.Namespace, opened: Opener, env: Mapping[str, str]) -> int:
    password = read_password(args.password_file, env, optional=False)
    if password is None:
        raise CliError(
            f"no password given: use --password-file FILE (- for standard input) or {ENV_PASSWORD}, "
            "or run this in a terminal to be asked"
        )
    with opened() as services:
        _store(services, password)
    return 0


def init_password(services: Services, file: str | None, env: Mapping[str, str]) -> None:
    """The admin password step of ``fedblog init``: set it if given; ask only if none is set yet."""
    already = has_password(services)
    if not file and not env.get(ENV_PASSWORD) and (already or not sys.stdin.isatty()):
        if not already:
            print("No admin password yet: set one with 'fedblog admin set-password' to use /admin")
        return
    password = read_password(file, env, optional=True)
    if password is None:
        print("No admin password set: set one later with 'fedblog admin set-password'")
        return
    _store(services, password)


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], opened: Opener, env: Mapping[str, str]
) -> None:
    """Add ``fedblog admin set-password`` to the command line (``env``: the process environment)."""
    admin = sub.add_parser("admin", help="the admin area at /admin: set the owner's password")
    admin_sub = admin.add_subparsers(dest="admin_command", metavar="ACTION")
    setpw = admin_sub.add_parser(
        "set-password",
        help="set or change the password for /admin (logs every browser out)",
        description=f"Reads the password from --password-file, else {ENV_PASSWORD}, else asks in the terminal. "
        "At least 15 characters.",
    )
    setpw.add_argument("--password-file", metavar="FILE", help="read the password from FILE (- for standard input)")
    setpw.set_defaults(func=lambda args: cmd_set_password(args, opened, env))

    def admin_help(_args: argparse.Namespace) -> int:
        admin.print_help()
        return 2

    admin.set_defaults(func=admin_help)
