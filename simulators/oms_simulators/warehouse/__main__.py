"""`python -m oms_simulators.warehouse` runs the warehouse simulator."""

from oms_simulators.warehouse.app import main

main()
