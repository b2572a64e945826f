"""Segments that act: well-being segments, their outreach campaigns and a case per family."""
