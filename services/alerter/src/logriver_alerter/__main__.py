from __future__ import annotations

from logriver_alerter.app import create_app
from logriver_alerter.settings import AlerterSettings
from logriver_common.app import run_service


def main() -> None:
    settings = AlerterSettings()
    run_service(create_app(settings), settings)


if __name__ == "__main__":
    main()
