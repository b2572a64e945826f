"""Reports: statistics across domains, server-rendered SVG charts, CSV/XLSX exports, the
monthly PDF report."""
