"""Virtual social card: passes, revocation, linked bank cards, chip cards and kiosks."""
