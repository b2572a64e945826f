"""socialcard: proactive social benefits for a whole country."""

__version__ = "0.1.0"
