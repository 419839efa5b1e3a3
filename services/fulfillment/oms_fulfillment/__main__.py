"""`python -m oms_fulfillment` runs the service."""

from oms_fulfillment.app import main

main()
