"""``taggerhub recordings list|download|export|remove``: recordings made with ``TT.FileWriter`` on a server.

Each user sees and removes their own (admins anyone's, with ``--user``). ``download`` copies every
file of a recording (sequence header and parts) next to each other, so the simulator's
``FileReader`` or ``createTimeTaggerVirtual().replay()`` reads them locally; ``export`` downloads
and writes Photon-HDF5 with :func:`taggerhub.sim.photon_hdf5.export_photon_hdf5`.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

from ..client.recordings import download
from ._options import client_options, create_proxy


def cmd_list(args: argparse.Namespace) -> int:
    rows = create_proxy(args).hub_recordings(args.user)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'user':12} {'name':32} {'files':>5} {'bytes':>12} {'events':>12}  channels")
    for r in rows:
        events = "?" if r["events"] is None else str(r["events"])
        print(f"{r['user']:12} {r['name']:32} {len(r['files']):>5} {r['bytes']:>12} {events:>12}  "
              f"{','.join(str(c) for c in r['channels'])}")
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    paths = download(create_proxy(args), args.name, Path(args.output), args.user)
    for path in paths:
        print(path)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from ..sim.photon_hdf5 import export_photon_hdf5

    channels = [int(c) for c in args.channels.split(",")] if args.channels else None
    with tempfile.TemporaryDirectory(prefix="taggerhub-export-") as scratch:
        paths = download(create_proxy(args), args.name, Path(scratch), args.user)
        out = export_photon_hdf5(paths[0], args.output, channels=channels, description=args.description,
                                 overwrite=args.overwrite)
    print(out)
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    for removed in create_proxy(args).hub_recording_remove(args.name, args.user):
        print(f"removed {removed}")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    recordings = sub.add_parser("recordings", help="list, download, export or remove recordings made on a server",
                                description="Recordings made with TT.FileWriter through a server live in the "
                                            "user's own folder there. Users see their own; admins anyone's.")
    actions = recordings.add_subparsers(dest="action", required=True, metavar="ACTION")

    def action(name: str, help_text: str, func: Any, with_name: bool = True) -> argparse.ArgumentParser:
        parser = actions.add_parser(name, help=help_text, description=help_text)
        client_options(parser)
        if with_name:
            parser.add_argument("name", help="the recording, as 'taggerhub recordings list' names it")
        parser.add_argument("--user", default="",
                            help="another user's recordings (admins; '*' lists everyone's) (default: your own)")
        parser.set_defaults(func=func)
        return parser

    listing = action("list", "list recordings: name, files, bytes, events, channels", cmd_list, with_name=False)
    listing.add_argument("--json", action="store_true", help="print machine-readable JSON (default: a table)")
    fetch = action("download", "copy every file of a recording to a local folder", cmd_download)
    fetch.add_argument("-o", "--output", default=".", help="local folder (default: the current one)")
    export = action("export", "download a recording and write it as Photon-HDF5", cmd_export)
    export.add_argument("--format", default="photon-hdf5", choices=["photon-hdf5"],
                        help="file format (default: %(default)s, the field's open standard, via phconvert)")
    export.add_argument("-o", "--output", required=True, help="the .h5 file to write")
    export.add_argument("--channels", default="", help="comma-separated channels to export (default: all recorded)")
    export.add_argument("--description", default=None, help="description stored in the file (default: generated)")
    export.add_argument("--overwrite", action="store_true", help="replace an existing output file (default: refuse)")
    action("remove", "delete a recording (every file of it) on the server", cmd_remove)
