"""Rules: benefit programs as data, the engine that evaluates them, and their CLI."""
