"""Ingestion of agency data: declared source schemas, row validation, quarantine, batches."""
