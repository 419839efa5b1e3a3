"""`python -m oms_simulators.carrier` runs the carrier simulator."""

from oms_simulators.carrier.app import main

main()
