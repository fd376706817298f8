"""Step inputs: workspace paths, URLs, OCI artifacts and data sets, fetched into the store and checked."""
