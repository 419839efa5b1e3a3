"""Pytest entry: the fixtures in tests/fixtures.py serve tests/ and services/*/tests/ alike."""

pytest_plugins = ["tests.fixtures"]
