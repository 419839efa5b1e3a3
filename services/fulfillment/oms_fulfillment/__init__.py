"""The OMS fulfillment service."""
