from __future__ import annotations

from logriver_common.app import run_service
from logriver_writer.app import create_app
from logriver_writer.settings import WriterSettings


def main() -> None:
    settings = WriterSettings()
    run_service(create_app(settings), settings)


if __name__ == "__main__":
    main()
