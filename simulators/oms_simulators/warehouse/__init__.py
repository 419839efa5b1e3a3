"""The simulated warehouse pickers: pick lists in, pick confirmations out (not part of the OMS)."""
