"""Alerter unit tests: no network."""
