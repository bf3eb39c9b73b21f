"""``logriver``: the client's command line. ``logriver ship`` tails files to the gateway."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from datetime import tzinfo
from pathlib import Path
from types import FrameType

from logriver_client.retry import RetryPolicy
from logriver_client.shipper.ship import Shipper, ShipperConfig
from logriver_client.shipper.timestamps import DEFAULT_JSON_FIELDS, check_format, parse_timezone
from logriver_client.transport import FatalAuthError, HttpTransport

DEFAULT_URL = "http://127.0.0.1:8000"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="logriver", description="logriver client tools")
    commands = parser.add_subparsers(dest="command", required=True)
    ship = commands.add_parser(
        "ship",
        help="tail log files and ship them to the gateway",
        description="Tail files (paths or globs), follow rotation, and ship every line "
        "exactly once to POST <url>/v1/logs.",
    )
    ship.add_argument("paths", nargs="+", help="files or globs (quote globs)")
    ship.add_argument("--service", required=True, help="service name for the events")
    ship.add_argument("--url", default=os.environ.get("LOGRIVER_URL", DEFAULT_URL))
    ship.add_argument(
        "--api-key",
        default=os.environ.get("LOGRIVER_API_KEY"),
        help="API key (default: $LOGRIVER_API_KEY)",
    )
    ship.add_argument(
        "--checkpoint",
        type=Path,
        default=Path(".logriver-ship.checkpoint.json"),
        help="where acknowledged offsets are kept (written atomically)",
    )
    ship.add_argument("--env", help="environment name added to each event")
    ship.add_argument("--host", help="host name (default: this machine's)")
    ship.add_argument(
        "--multiline-start",
        metavar="REGEX",
        help="a line matching REGEX starts a record; other lines continue the previous one "
        r"(e.g. '^\d{4}-\d{2}-\d{2}' joins stack traces to their log line)",
    )
    ship.add_argument("--multiline-timeout", type=float, default=1.0)
    ship.add_argument("--no-json", action="store_true", help="do not parse JSON lines")
    times = ship.add_argument_group(
        "event time",
        "Each event's time is read from its line (a multi-line record: its first line). "
        "A line without a usable time (none, unparseable, before 1970 or in the future) "
        "gets the gateway's receive time, and is counted in the progress.",
    )
    times.add_argument(
        "--time-field",
        action="append",
        metavar="NAME",
        help="JSON field holding the time, repeatable; the first present usable one wins "
        f"(default: {', '.join(DEFAULT_JSON_FIELDS)}); RFC 3339 or epoch s/ms/us/ns",
    )
    times.add_argument(
        "--time-format",
        default="auto",
        type=_time_format,
        metavar="FORMAT",
        help="the timestamp at the start of a plain line: auto (ISO 8601 / RFC 3339, "
        "'%%Y-%%m-%%d %%H:%%M:%%S[,.]fff', syslog '%%b %%d %%H:%%M:%%S', 10-digit epoch "
        "seconds or 13-digit millis), iso8601 (= rfc3339), syslog, epoch, epoch_ms, none "
        "(always receive time), or a strptime format such as '%%d/%%b/%%Y:%%H:%%M:%%S'. "
        "Without a year, the most recent year that is not in the future is taken.",
    )
    times.add_argument(
        "--timezone",
        default="UTC",
        type=_timezone,
        metavar="TZ",
        help="zone of stamps without an offset: UTC (default), local, an IANA name "
        "(Europe/Berlin) or +HH:MM",
    )
    ship.add_argument("--batch-size", type=int, default=500)
    ship.add_argument("--batch-wait", type=float, default=1.0, help="seconds a batch may wait")
    ship.add_argument("--poll-interval", type=float, default=0.25)
    ship.add_argument(
        "--rotate-wait",
        type=float,
        default=5.0,
        help="seconds to keep reading a rotated-away file after its last write",
    )
    ship.add_argument(
        "--start-at-end",
        action="store_true",
        help="files found at start-up without a checkpoint are shipped from their end",
    )
    ship.add_argument("--progress-interval", type=float, default=30.0, help="0 disables")
    ship.add_argument("--status", type=Path, help="JSON status file, rewritten with progress")
    ship.add_argument("--shutdown-timeout", type=float, default=10.0)
    ship.add_argument("--max-backoff", type=float, default=30.0)
    return parser


def _time_format(value: str) -> str:
    try:
        return check_format(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _timezone(value: str) -> tzinfo | None:
    try:
        return parse_timezone(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def ship(args: argparse.Namespace) -> int:
    config = ShipperConfig(
        patterns=args.paths,
        service=args.service,
        checkpoint=args.checkpoint,
        env=args.env,
        multiline_start=args.multiline_start,
        multiline_timeout=args.multiline_timeout,
        parse_json=not args.no_json,
        time_fields=tuple(args.time_field or DEFAULT_JSON_FIELDS),
        time_format=args.time_format,
        timezone=args.timezone,
        batch_size=args.batch_size,
        batch_wait=args.batch_wait,
        poll_interval=args.poll_interval,
        rotate_wait=args.rotate_wait,
        start_at_end=args.start_at_end,
        progress_interval=args.progress_interval,
        status_file=args.status,
        shutdown_timeout=args.shutdown_timeout,
    )
    if args.host:
        config.host = args.host
    transport = HttpTransport(
        args.url,
        args.api_key,
        retry=RetryPolicy(max_delay=args.max_backoff),
        # A shipper must not skip lines on a bad key: stop, keep the checkpoint, let
        # the operator fix the key and restart where it stopped.
        raise_on_auth_error=True,
    )
    shipper = Shipper(config, transport)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()
        shipper.stop_soon()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        shipper.run(stop)
    except FatalAuthError as exc:
        sys.stderr.write(f"logriver ship: the gateway refused the API key: {exc}\n")
        return 3
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = _parser().parse_args(argv)
    if args.command == "ship":
        return ship(args)
    return 2  # pragma: no cover - argparse enforces the sub-command


if __name__ == "__main__":
    sys.exit(main())
