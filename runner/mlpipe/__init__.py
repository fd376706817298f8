"""mlpipe: a CI-native machine-learning pipeline runner."""

__version__ = "0.1.0"
