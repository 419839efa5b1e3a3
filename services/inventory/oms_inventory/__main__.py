"""`python -m oms_inventory` runs the service."""

from oms_inventory.app import main

main()
