"""Reporting to GitHub: the Actions context, check runs with annotations, and job summaries."""
