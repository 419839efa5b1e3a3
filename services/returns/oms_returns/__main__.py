"""`python -m oms_returns` runs the service."""

from oms_returns.app import main

main()
