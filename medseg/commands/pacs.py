"""``medseg pacs studies URL`` / ``medseg pacs series URL --study UID``: browse a DICOMweb
server; and the ``--dicomweb`` options of ``medseg segment`` (added by
:func:`add_segment_options`, run by :func:`segment_from_args`)."""

from __future__ import annotations

import json
from typing import Any

from medseg.errors import MedsegError
from medseg.pacs.auth import resolve_credentials
from medseg.pacs.batch import segment_series
from medseg.pacs.client import DEFAULT_CONNECT_TIMEOUT, DEFAULT_TIMEOUT, Server, open_client
from medseg.pacs.query import list_series, list_studies
from medseg.pacs.worklist import plan, requests_from


def add_server_options(p) -> None:
    """Credentials and TLS options shared by every command that talks to a server."""
    p.add_argument("--auth-file", default=None, metavar="JSON",
                   help='credentials file {"user": ..., "password": ...} or {"token": ...}, '
                        "not readable by other users (default: $MEDSEG_DICOMWEB_USER + "
                        "$MEDSEG_DICOMWEB_PASSWORD, or $MEDSEG_DICOMWEB_TOKEN)")
    p.add_argument("--ca-bundle", default=None, metavar="PEM",
                   help="CA certificates to verify the server's TLS certificate")
    p.add_argument("--insecure", action="store_true",
                   help="do not verify the TLS certificate (warns; trusted networks only)")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                   help="the most one request may take as a whole, from connecting to its "
                        f"last byte (default {DEFAULT_TIMEOUT:g})")
    p.add_argument("--connect-timeout", type=float, default=DEFAULT_CONNECT_TIMEOUT,
                   metavar="SECONDS", help="the most opening a connection may take "
                                           f"(default {DEFAULT_CONNECT_TIMEOUT:g})")
    p.add_argument("--follow-redirects", action="store_true",
                   help="follow a server's redirect of a query or download to another origin "
                        "(an upload is never redirected, HTTPS never to plain HTTP)")


def add_segment_options(p) -> None:
    """``medseg segment --dicomweb URL --study UID [--series UID] [--worklist CSV] [--push]``."""
    g = p.add_argument_group("DICOMweb (PACS) input, see docs/pacs.md")
    g.add_argument("--dicomweb", default=None, metavar="URL",
                   help="segment series of a DICOMweb server instead of local INPUTs")
    g.add_argument("--study", action="append", default=[], metavar="UID",
                   help="StudyInstanceUID (repeat for a worklist); every series of the "
                        "model's modality is segmented unless --series picks one")
    g.add_argument("--series", default=None, metavar="UID", help="SeriesInstanceUID")
    g.add_argument("--worklist", default=None, metavar="CSV",
                   help="CSV with a StudyInstanceUID column (optional SeriesInstanceUID)")
    g.add_argument("--push", action="store_true",
                   help="store each SEG into its source study on the server (STOW-RS)")
    add_server_options(g)


def uses_dicomweb(args) -> bool:
    """Whether ``medseg segment`` reads from a server; PACS options without ``--dicomweb``
    are an error rather than silently ignored."""
    if args.dicomweb:
        return True
    given = [flag for flag, value in (("--study", args.study), ("--series", args.series),
                                      ("--worklist", args.worklist), ("--push", args.push))
             if value]
    if given:
        raise MedsegError(f"{', '.join(given)} need(s) --dicomweb URL")
    return False


def server_from_args(url: str, args) -> Server:
    return Server(url, credentials=resolve_credentials(args.auth_file),
                  ca_bundle=args.ca_bundle, insecure=args.insecure, timeout=args.timeout,
                  connect_timeout=args.connect_timeout, follow_redirects=args.follow_redirects)


def segment_from_args(args, segmenter) -> list[dict[str, Any]]:
    """The ``--dicomweb`` path of ``medseg segment``: plan, download, segment, push."""

    if args.inputs:
        raise MedsegError("give local INPUTs or --dicomweb, not both")
    server = server_from_args(args.dicomweb, args)
    requests = requests_from(args.study, args.series, args.worklist)
    client = open_client(server)
    modality = getattr(getattr(segmenter, "info", None), "modality", None)
    planned = plan(client, server, requests, modality)
    return segment_series(client, server, planned, args.output, segmenter,
                          overwrite=args.overwrite, push=args.push, dicom_seg=args.dicom_seg,
                          keep_patient_data=args.keep_patient_data, progress=not args.quiet,
                          report=None if args.quiet else
                          (lambda case, message: print(f"{case}: {message}")))


def register(sub) -> None:
    p = sub.add_parser("pacs", help="browse a DICOMweb server (studies, series)")
    psub = p.add_subparsers(dest="pacs_command", metavar="WHAT", required=True)
    for name, helptext in (("studies", "list the server's studies"),
                           ("series", "list the series of one study")):
        q = psub.add_parser(name, help=helptext)
        q.add_argument("url", metavar="URL", help="DICOMweb root, e.g. http://host/dicom-web")
        if name == "series":
            q.add_argument("--study", required=True, metavar="UID")
        else:
            q.add_argument("--limit", type=int, default=200)
        q.add_argument("--with-patient", action="store_true",
                       help="also show PatientID and PatientName (hidden by default)")
        q.add_argument("--json", action="store_true", help="JSON rows instead of a table")
        add_server_options(q)
        q.set_defaults(func=run)


def _table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "(none)"
    cols = list(rows[0])
    cells = [[str(r[c]) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(line.rstrip() for line in lines)


def run(args) -> int:

    server = server_from_args(args.url, args)
    client = open_client(server)
    if args.pacs_command == "studies":
        rows = list_studies(client, server, with_patient=args.with_patient, limit=args.limit)
    else:
        rows = list_series(client, server, args.study, with_patient=args.with_patient)
    print(json.dumps(rows, indent=2) if args.json else _table(rows))
    return 0
