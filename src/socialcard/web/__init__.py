"""Server-rendered pages: the operator console, citizens' and merchants' pages."""
