"""`python -m oms_shipping` runs the service."""

from oms_shipping.app import main

main()
