"""The original design's ingest path: straight from HTTP into MongoDB.

``POST /logs`` takes one event (one ``insert_one``); ``POST /logs/bulk`` takes a
JSON array (one ``insert_many``, 1,000 per request in the benches), both with
w=majority into the same 3-member replica set. This is what logriver replaced.
It exists only so bench/ can measure our pipeline against it on the same
machine, in the same run. Run it with ``python -m bench.baseline.app --port N --database D``.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel
from pymongo import AsyncMongoClient

MONGO_URI = "mongodb://127.0.0.1:27017,127.0.0.1:27018,127.0.0.1:27019/?replicaSet=rs0"


class LogEntry(BaseModel):
    """The original design's model."""

    timestamp: datetime | None = None
    level: str
    service: str
    message: str
    metadata: dict[str, Any] | None = None


def create_app(database: str) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(MONGO_URI, w="majority")
        app.state.logs = client[database]["logs"]
        yield
        await client.close()

    app = FastAPI(lifespan=lifespan)

    @app.post("/logs", status_code=201)
    async def create_log(entry: LogEntry) -> dict[str, str]:
        doc = entry.model_dump()
        doc["timestamp"] = doc["timestamp"] or datetime.now(UTC)
        result = await app.state.logs.insert_one(doc)
        return {"id": str(result.inserted_id)}

    @app.post("/logs/bulk", status_code=201)
    async def create_logs(entries: list[LogEntry]) -> dict[str, int]:
        now = datetime.now(UTC)
        docs = [entry.model_dump() for entry in entries]
        for doc in docs:
            doc["timestamp"] = doc["timestamp"] or now
        if docs:
            await app.state.logs.insert_many(docs)
        return {"inserted": len(docs)}

    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--database", required=True)
    args = parser.parse_args()
    uvicorn.run(create_app(args.database), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
