from __future__ import annotations

from logriver_common.app import run_service
from logriver_stream.app import create_app
from logriver_stream.direct_send import ExposeServerSend
from logriver_stream.settings import StreamSettings


def main() -> None:
    settings = StreamSettings()
    run_service(ExposeServerSend(create_app(settings)), settings)


if __name__ == "__main__":
    main()
