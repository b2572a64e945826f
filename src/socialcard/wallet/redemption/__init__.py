"""The business wallet: authorize, capture, void, refund, balance inquiry, settlement."""
