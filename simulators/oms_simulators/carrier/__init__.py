"""The simulated carriers: booking requests in, answers and parcel scans out (not part of the OMS)."""
