"""The domain: sipgate.io events, calls, labels and statistics; no HTTP, Prometheus or storage."""
