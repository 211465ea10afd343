"""Tests of exporter/storage."""
