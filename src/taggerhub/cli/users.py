"""``taggerhub user``: users, roles and tokens in the users file."""

from __future__ import annotations

import argparse
import json
import sys

from ..config import AuthSettings, ConfigError, load_settings

ROLES = ("admin", "operator", "observer")
TOKEN_STDIN_HELP = "read the token (NAME.SECRET, SECRET at least 32 random characters) from standard input"


def _store(args: argparse.Namespace):
    from ..access.users import UserStore

    path = args.users_file or load_settings(args.config).auth.users_file
    return UserStore(path)


def _token_from_stdin() -> str:
    """The first line of stdin: a token given by the admin (never on the command line, where `ps` shows it)."""
    line = sys.stdin.readline().strip()
    if not line:
        raise ConfigError("--token-stdin: no token on standard input")
    return line


def _put_given_token(store, args: argparse.Namespace) -> int:
    """``add``/``rotate``/``set`` with the admin's token: say what happened, never print the token."""
    token = _token_from_stdin()
    store.load()
    user = store.get(args.name)
    if args.action == "add" and user is not None:
        raise ConfigError(f"user {args.name!r} already exists (use 'rotate' or 'set')")
    if args.action == "rotate" and user is None:
        raise ConfigError(f"no user {args.name!r} in {store.path}")
    role = args.role if args.action != "rotate" else user.role.name
    changed = store.put(args.name, role, token)
    print(f"user {args.name} ({role}) {'changed' if changed else 'unchanged'}")
    return 0


def cmd_user(args: argparse.Namespace) -> int:
    """One action on the users file; a new token goes to stdout once, everything else to stderr."""
    store = _store(args)
    if args.action == "set" or getattr(args, "token_stdin", False):
        return _put_given_token(store, args)
    if args.action == "list":
        store.load()
        if args.json:  # for scripts and the Ansible role
            print(json.dumps([{"name": u.name, "role": u.role.name, "created": u.created} for u in store.users()]))
            return 0
        for user in store.users():
            print(f"{user.name:24} {user.role.name:9} created {user.created}")
        return 0
    if args.action == "add":
        token = store.add(args.name, args.role)
    elif args.action == "rotate":
        token = store.rotate(args.name)
    elif args.action == "role":
        store.set_role(args.name, args.role)
        print(f"user {args.name} is now {args.role}", file=sys.stderr)
        return 0
    else:
        store.remove(args.name)
        print(f"user {args.name} removed from {store.path}", file=sys.stderr)
        return 0
    print(f"token for {args.name} (shown once, store it now; the server keeps only a hash):", file=sys.stderr)
    print(token)
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    user = sub.add_parser("user", help="manage users and their tokens (users.toml)",
                          description="Manage the users allowed on the server, their roles and tokens.")
    user.add_argument("--config", default=None, metavar="FILE",
                      help="taggerhub TOML settings file, for [auth] users_file (default: $TAGGERHUB_CONFIG)")
    user.add_argument("--users-file", default=None, metavar="FILE",
                      help=f"users file (default: [auth] users_file, {AuthSettings().users_file})")
    actions = user.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = actions.add_parser("add", help="add a user; print their new token once")
    add.add_argument("name", help="user name")
    add.add_argument("--role", required=True, choices=ROLES, help="what the user may do")
    add.add_argument("--token-stdin", action="store_true", help=TOKEN_STDIN_HELP + " (default: make one)")
    listing = actions.add_parser("list", help="list users and roles")
    listing.add_argument("--json", action="store_true",
                         help="one JSON list of {name, role, created} (default: a table)")
    for name, text in (("remove", "remove a user"), ("rotate", "give a user a new token; print it once")):
        action = actions.add_parser(name, help=text)
        action.add_argument("name", help="user name")
        if name == "rotate":
            action.add_argument("--token-stdin", action="store_true", help=TOKEN_STDIN_HELP + " (default: make one)")
    put = actions.add_parser("set", help="create or update a user with the role and the token read from stdin; "
                                         "prints 'changed' or 'unchanged' (lab-wide users)")
    put.add_argument("name", help="user name")
    put.add_argument("--role", required=True, choices=ROLES, help="what the user may do")
    put.add_argument("--token-stdin", action="store_true", required=True, help=TOKEN_STDIN_HELP)
    role = actions.add_parser("role", help="change a user's role")
    role.add_argument("name", help="user name")
    role.add_argument("role", choices=ROLES, help="the new role")
    user.set_defaults(func=cmd_user)
