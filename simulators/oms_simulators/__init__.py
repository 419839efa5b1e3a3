"""Simulators of the outside world (warehouse pickers, carriers): separate processes, not the OMS."""
