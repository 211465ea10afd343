"""Benchmarks of the exporter against a bare Bottle-on-waitress baseline, run by `make bench`."""
