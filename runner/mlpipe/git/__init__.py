"""Git: code snapshots (tree hashes of a code dir), ignore rules, the index reader, git commands, provenance, work copies."""
