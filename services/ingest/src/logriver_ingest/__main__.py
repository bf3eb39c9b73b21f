from __future__ import annotations

from logriver_common.app import run_service
from logriver_ingest.app import create_app
from logriver_ingest.settings import IngestSettings


def main() -> None:
    settings = IngestSettings()
    run_service(create_app(settings), settings)


if __name__ == "__main__":
    main()
