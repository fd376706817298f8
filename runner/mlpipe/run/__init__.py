"""Carrying out a plan: the session (pipeline + store), preparing steps, the runner, leftovers and locks."""
