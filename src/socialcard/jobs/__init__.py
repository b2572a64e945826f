"""Long work (rules runs, campaigns, well-being scoring, the ledger check) as stored jobs."""
