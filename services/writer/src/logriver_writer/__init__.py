"""The writer: consumes logs.v1 and bulk-inserts events into MongoDB, exactly once."""
