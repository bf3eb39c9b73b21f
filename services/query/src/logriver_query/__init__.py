"""The query service: search, pagination and aggregations over stored logs, and the web console."""
