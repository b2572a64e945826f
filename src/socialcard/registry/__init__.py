"""The national registry: persons, families, facts from agencies, life events."""
