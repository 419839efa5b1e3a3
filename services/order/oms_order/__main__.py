"""`python -m oms_order` runs the service."""

from oms_order.app import main

main()
