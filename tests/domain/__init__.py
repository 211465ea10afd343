"""Tests of exporter/domain."""
