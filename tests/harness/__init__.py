"""A minimal service built on the shared runtime, for testing the runtime itself.

It is a real process using the real host, relay, inbox and consumer loop; its
only business is to record one row per handled message in ``effects`` WITHOUT
a unique constraint, so a doubled effect would be visible to the tests.
"""
