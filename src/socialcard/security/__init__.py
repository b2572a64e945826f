"""Security: API keys with roles, and the audit log of personal-data reads."""
