"""The OMS shipping service."""
