"""Staff accounts (password sign-in), browser sessions and citizens' one-time sign-in codes."""
