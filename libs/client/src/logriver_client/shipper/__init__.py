"""``logriver ship``: tail log files and ship them to the gateway exactly once."""
