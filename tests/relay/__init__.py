"""Tests of exporter/relay."""
