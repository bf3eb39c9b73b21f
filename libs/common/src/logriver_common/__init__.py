"""Shared code for logriver services: the event contract and the plumbing every service uses."""
