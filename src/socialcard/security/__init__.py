"""Security: the keyring of secrets, API keys bound to roles, maker–checker approvals,
one-time codes, and the hash-chained audit log of personal-data reads."""
