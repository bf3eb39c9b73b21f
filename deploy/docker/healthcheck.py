"""The image's HEALTHCHECK: GET /healthz of the service this image runs.

Standard library only (it runs every few seconds, so it must start fast). The
port is the service's own setting, ``LOGRIVER_<SERVICE>_PORT``, else its default.
"""

from __future__ import annotations

import os
import sys
import urllib.request

DEFAULT_PORTS = {"ingest": 8000, "query": 8001, "stream": 8002, "alerter": 8003, "writer": 8004}


def main() -> int:
    service = os.environ["APP_SERVICE"]
    port = os.environ.get(f"LOGRIVER_{service.upper()}_PORT", str(DEFAULT_PORTS[service]))
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=3) as resp:
            return 0 if resp.status == 200 else 1
    except OSError as exc:
        print(f"healthz: {exc}", file=sys.stderr)  # noqa: T201
        return 1


if __name__ == "__main__":
    sys.exit(main())
