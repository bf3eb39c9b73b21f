from __future__ import annotations

from logriver_common.app import run_service
from logriver_query.app import create_app
from logriver_query.settings import QuerySettings


def main() -> None:
    settings = QuerySettings()
    run_service(create_app(settings), settings)


if __name__ == "__main__":
    main()
