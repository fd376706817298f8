"""Command line: parses arguments, calls the package's functions, prints their results."""
