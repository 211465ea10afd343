"""Tests of exporter/config."""
