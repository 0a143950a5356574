"""Use cases. The only layer that opens transactions and checks permissions."""
