"""The ingest gateway: validates logs and publishes them to Kafka; acks only when durable."""
