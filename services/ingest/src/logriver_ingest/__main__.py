"""``python -m logriver_ingest`` runs the gateway; ``python -m logriver_ingest relay`` the relay."""

from __future__ import annotations

import sys

from logriver_common.workers import run_workers
from logriver_ingest.settings import IngestSettings

USAGE = "usage: python -m logriver_ingest [relay]"


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    settings = IngestSettings()
    if not args:
        run_workers(
            "logriver_ingest.app:app_from_environment",
            settings,
            name="ingest",
            workers=settings.workers,
        )
    elif args == ["relay"]:
        # Imported here: the gateway's supervisor (several workers) stays small.
        from logriver_common.app import run_service
        from logriver_ingest.relay_app import create_relay_app

        run_service(
            create_relay_app(settings), settings.model_copy(update={"port": settings.relay_port})
        )
    else:
        sys.exit(USAGE)


if __name__ == "__main__":
    main()
