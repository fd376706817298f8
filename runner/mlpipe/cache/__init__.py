"""Result stores: where step results are kept and found by fingerprint."""
