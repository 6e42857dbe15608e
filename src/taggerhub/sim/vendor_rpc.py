"""Serve the simulator with the vendor's own TimeTaggerRPC server (drop-in check and RPC benchmarks).

The vendor server does ``import TimeTagger``; pointing ``sys.modules['TimeTagger']``
at :mod:`taggerhub.sim` before importing it makes it reflect over the
simulator instead. Run ``python -m taggerhub.sim.vendor_rpc --port 23000``;
needs the ``timetaggerrpc`` package (in the ``test`` extra).
"""

from __future__ import annotations

import argparse
import sys
import types

import taggerhub.sim


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=23000)
    parser.add_argument("--lab", default=None, help="simulator lab TOML file (default: the built-in lab)")
    parser.add_argument("--clock", choices=("realtime", "virtual"), default="realtime")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    taggerhub.sim.configure(args.lab, clock=args.clock, seed=args.seed)
    # The vendor server exposes every public module function; a remote client must not reconfigure the lab.
    view = types.ModuleType("TimeTagger", taggerhub.sim.__doc__)
    view.__dict__.update({k: v for k, v in vars(taggerhub.sim).items()
                          if not k.startswith("__") and k != "configure"})
    sys.modules["TimeTagger"] = view
    from TimeTaggerRPC import server  # imported late: it binds `TimeTagger` at import time

    server.start_server(host=args.host, port=args.port)


if __name__ == "__main__":
    main()
