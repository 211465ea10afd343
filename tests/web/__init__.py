"""Tests of exporter/web."""
