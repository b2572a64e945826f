"""Tests of the card domain."""
