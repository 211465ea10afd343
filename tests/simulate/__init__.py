"""Tests of exporter/simulate."""
