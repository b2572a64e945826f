"""The digital family card (ЦКС): well-being methodology as data, scoring, levels, lists."""
