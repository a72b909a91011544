"""The `fedstats` command: argparse subcommands, most of them loaded only when run.

Built in: `node` (serve one node) and `keys new`. Other subcommands are one line in
`LAZY` — name, help, `module:function` — whose function receives the remaining argv and
returns an exit code; their module is imported only when that subcommand runs, so
`fedstats node` never pays for (or breaks on) the demo's or operator's imports.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path

# name -> (help, "module:function(argv) -> int")
LAZY: dict[str, tuple[str, str]] = {
    "demo": ("run the whole federation flow locally (nats-server, admin, peers)",
             "fedstats_harness.demo:main"),
    "operator": ("run the Kubernetes operator (kopf): Federation, Peer, PsrContract",
                 "fedstats.operator.main:main"),
    "modelstore": ("call a node's JSON-RPC model store (xData FL style)",
                   "fedstats.modelstore_cli:main"),
    "flow": ("call a node's FATE-Flow v1 API (fate_flow_client.py -f syntax)",
             "fedstats.flowcli:main"),
}


def _node(args: argparse.Namespace) -> int:
    from .node.api.app import create_app
    from .node.api.server import run
    from .node.settings import Settings

    if args.party_id:
        if not args.party_id.isdigit():
            raise SystemExit(f"fedstats node: --party-id takes a FATE party id (digits), "
                             f"not {args.party_id!r}")
        os.environ["FEDSTATS_FLOW_PARTY_ID"] = args.party_id  # read by the flow facade
    settings = Settings.from_env(
        host=args.host, port=args.port,
        data_dir=Path(args.data_dir) if args.data_dir else None,
        customers_file=Path(args.customers) if args.customers else None,
        max_body_bytes=args.max_body_bytes, checkpoint_every=args.checkpoint_every,
        max_body_bytes_reading=args.max_body_bytes_reading,
        max_ws_message_bytes=args.max_ws_message_bytes,
        limits=_limit_changes(args.limit),
    )
    try:
        app = create_app(settings)
    except (OSError, ValueError) as e:
        print(f"fedstats node: {e}", file=sys.stderr)
        return 2
    run(app, settings, log_level=args.log_level, loop="auto", timeout_graceful_shutdown=10)
    return 0


def _limit_changes(pairs: list[str] | None) -> dict[str, int]:
    """`["max_categories=500", ...]` -> {"max_categories": 500} (Settings.limits changes)."""
    from .node.limits import Limits

    out: dict[str, int] = {}
    for pair in pairs or ():
        name, sep, value = (p.strip() for p in pair.partition("="))
        if not sep or not (value.isascii() and value.isdigit()) or name not in Limits.names():
            raise SystemExit(f"fedstats node: --limit takes NAME=positive integer, not {pair!r}"
                             f" (names: {', '.join(Limits.names())})")
        out[name] = int(value)
    return out


def _keys_new(args: argparse.Namespace) -> int:
    from .node.security.keys import new_secret_key

    print(new_secret_key())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fedstats", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    node = sub.add_parser("node", help="serve one node (REST + WebSocket API)")
    node.add_argument("--host", default="127.0.0.1")
    node.add_argument("--port", type=int, default=8080)
    node.add_argument("--data-dir", help="where the node's SQLite store lives")
    node.add_argument("--customers", help="JSON {customer id: Base64 secret key} "
                      "(default: $FEDSTATS_CUSTOMERS)")
    node.add_argument("--max-body-bytes", type=int, default=None,
                      help="largest request body (default 256 MB)")
    node.add_argument("--max-body-bytes-reading", type=int, default=None,
                      help="bytes of all request bodies read at once; more is answered "
                      "503 + Retry-After (default 512 MB)")
    node.add_argument("--max-ws-message-bytes", type=int, default=None,
                      help="largest WebSocket message (default 16 MB)")
    node.add_argument("--checkpoint-every", type=int, default=None,
                      help="snapshot a project every N learned batches (default 64)")
    node.add_argument("--limit", action="append", metavar="NAME=VALUE",
                      help="change one data limit (docs/limits.md), e.g. max_categories=500")
    node.add_argument("--party-id", help="this node's FATE party id for the /v1 job API "
                      "(default: $FEDSTATS_FLOW_PARTY_ID)")
    node.add_argument("--log-level", default="info")
    node.set_defaults(run=_node)

    keys = sub.add_parser("keys", help="secret keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    keys_sub.add_parser("new", help="print a new Base64 secret key").set_defaults(run=_keys_new)

    for name, (help_text, _) in LAZY.items():
        sub.add_parser(name, help=help_text, add_help=False)  # listed; dispatched in main()
    return parser


def _run_lazy(name: str, argv: list[str]) -> int:
    target = LAZY[name][1]
    module_name, _, func = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        if e.name and module_name.startswith(e.name):
            where = (" (the demo runs from a source checkout: ./scripts/demo)"
                     if module_name.startswith("fedstats_harness") else "")
            print(f"fedstats {name}: {module_name} is not installed in this build{where}",
                  file=sys.stderr)
            return 2
        raise
    return int(getattr(module, func)(argv) or 0)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in LAZY:  # its own parser sees every argument, --help included
        return _run_lazy(argv[0], argv[1:])
    args = build_parser().parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
