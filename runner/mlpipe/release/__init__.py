"""Releases and going back in time: release manifests, verify, reproduce, checkout, baselines, pull."""
