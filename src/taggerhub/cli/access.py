"""``taggerhub user``, ``certs``, ``sessions`` and ``permissions``: access management from the shell."""

from __future__ import annotations

import argparse
import json
import sys
import time

from ..config import load_settings


def _store(args: argparse.Namespace):
    from ..access.users import UserStore

    path = args.users_file or load_settings(args.config).auth.users_file
    return UserStore(path)


def _token_from_stdin() -> str:
    """The first line of stdin: a token given by the admin (never on the command line, where `ps` shows it)."""
    from ..config import ConfigError

    line = sys.stdin.readline().strip()
    if not line:
        raise ConfigError("--token-stdin: no token on standard input")
    return line


def _put_given_token(store, args: argparse.Namespace) -> int:
    """``add``/``rotate``/``set`` with the admin's token: say what happened, never print the token."""
    from ..config import ConfigError

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


def cmd_certs(args: argparse.Namespace) -> int:
    from ..access import certs

    if args.action == "init":
        made = certs.init(args.dir, args.host, args.client)
    else:
        made = list(certs.issue(args.dir, args.name, args.name, client=True, days=args.days))
    for path in made:
        print(path)
    return 0


def _proxy(args: argparse.Namespace):
    from ..client.proxy import createProxy

    return createProxy(host=args.host, port=args.port, token=args.token, tls_ca=args.tls_ca,
                       tls_cert=args.tls_cert, tls_key=args.tls_key)


def cmd_sessions(args: argparse.Namespace) -> int:
    proxy = _proxy(args)
    if args.end:
        closed = proxy.hub_end_session(args.end)
        print(f"session {args.end} ended ({closed} connections closed)")
        return 0
    rows = proxy.hub_sessions()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'session':8} {'user':16} {'role':9} {'address':22} {'since':20} {'calls':>7} {'owned':>5}  lease")
    for r in rows:
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["since"]))
        mark = " (you)" if r.get("you") else ""
        print(f"{r['id']:8} {r['user']:16} {r['role']:9} {r['address']:22} {since:20} {r['calls']:>7} "
              f"{r['objects_owned']:>5}  {'yes' if r.get('lease') else ''}{mark}")
    return 0


def cmd_permissions(args: argparse.Namespace) -> int:
    from ..access.rules import markdown
    from ..backend.adapter import BackendApi
    from ..backend.loader import load_backend

    settings = load_settings(args.config, overrides={"server": {"backend": args.backend}})
    api = BackendApi(load_backend(settings.server.backend, settings.simulator))
    print(markdown(api, EXTRA_LIBRARY_CALLS), end="")
    return 0


EXTRA_LIBRARY_CALLS = ("acquireControl", "releaseControl", "enum_definitions", "hub_status", "hub_metrics",
                       "hub_sessions", "hub_end_session", "experiment", "experiments")


TOKEN_STDIN_HELP = "read the token (NAME.SECRET, SECRET at least 32 random characters) from standard input"


def _client_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="localhost")
    parser.add_argument("--port", type=int, default=23000)
    parser.add_argument("--token", default=None, help="access token (default: $TAGGERHUB_TOKEN)")
    parser.add_argument("--tls-ca", default=None,
                        help="lab CA to verify the server (default: $TAGGERHUB_CLIENT_TLS_CA)")
    parser.add_argument("--tls-cert", default=None, help="client certificate for mutual TLS")
    parser.add_argument("--tls-key", default=None, help="key of the client certificate")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register the access-management commands on the main parser."""
    user = sub.add_parser("user", help="manage users and their tokens (users.toml)")
    user.add_argument("--config", default=None, help="taggerhub TOML settings file (for auth.users_file)")
    user.add_argument("--users-file", default=None, help="users file (default: auth.users_file)")
    actions = user.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="add a user; print their new token once")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=("admin", "operator", "observer"))
    add.add_argument("--token-stdin", action="store_true", help=TOKEN_STDIN_HELP)
    listing = actions.add_parser("list", help="list users and roles")
    listing.add_argument("--json", action="store_true", help="one JSON list of {name, role, created}")
    for name, text in (("remove", "remove a user"), ("rotate", "give a user a new token; print it once")):
        action = actions.add_parser(name, help=text)
        action.add_argument("name")
        if name == "rotate":
            action.add_argument("--token-stdin", action="store_true", help=TOKEN_STDIN_HELP)
    put = actions.add_parser("set", help="create or update a user with the role and the token read from stdin; "
                                         "prints 'changed' or 'unchanged' (lab-wide users)")
    put.add_argument("name")
    put.add_argument("--role", required=True, choices=("admin", "operator", "observer"))
    put.add_argument("--token-stdin", action="store_true", required=True, help=TOKEN_STDIN_HELP)
    role = actions.add_parser("role", help="change a user's role")
    role.add_argument("name")
    role.add_argument("role", choices=("admin", "operator", "observer"))
    user.set_defaults(func=cmd_user)

    certs = sub.add_parser("certs", help="make a lab CA, server and client certificates for TLS")
    cert_actions = certs.add_subparsers(dest="action", required=True)
    init = cert_actions.add_parser("init", help="make the CA and the server certificate in DIR")
    init.add_argument("dir")
    init.add_argument("--host", action="append", default=[], required=True,
                      help="host name or IP address clients use for the server (repeat)")
    init.add_argument("--client", action="append", default=[], help="also make a client certificate for USER")
    client = cert_actions.add_parser("client", help="make a client certificate for USER (mutual TLS)")
    client.add_argument("dir")
    client.add_argument("name")
    client.add_argument("--days", type=int, default=825)
    certs.set_defaults(func=cmd_certs)

    sessions = sub.add_parser("sessions", help="list connected clients; --end SESSION disconnects one (admin)")
    _client_options(sessions)
    sessions.add_argument("--end", default=None, metavar="SESSION", help="end this session")
    sessions.add_argument("--json", action="store_true")
    sessions.set_defaults(func=cmd_sessions)

    perms = sub.add_parser("permissions", help="print the permission table (Markdown) for a backend")
    perms.add_argument("--config", default=None)
    perms.add_argument("--backend", choices=("simulator", "hardware"), default=None)
    perms.set_defaults(func=cmd_permissions)
