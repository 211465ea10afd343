"""`sipgate-exporter simulate`: plan realistic sipgate.io traffic and send it to an exporter."""
