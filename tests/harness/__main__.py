"""`python -m tests.harness` runs the harness service."""

from tests.harness.app import main

main()
