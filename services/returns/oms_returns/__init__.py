"""The OMS returns service."""
