"""Pure decisions: the step graph, fingerprints, run-or-reuse plans, run comparison. No I/O: data in, data out."""
