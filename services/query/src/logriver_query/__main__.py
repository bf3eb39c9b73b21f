from __future__ import annotations

from logriver_common.workers import run_workers
from logriver_query.settings import QuerySettings


def main() -> None:
    settings = QuerySettings()
    run_workers(
        "logriver_query.app:app_from_environment", settings, name="query", workers=settings.workers
    )


if __name__ == "__main__":
    main()
