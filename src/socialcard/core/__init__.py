"""Shared plumbing: settings, database, errors, logging, pagination."""
