"""Proactive benefits: campaigns, SMS consent, assignments, payment orders, life-event triggers."""
