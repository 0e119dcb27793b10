"""Reads, one module per feature. Each function runs a fixed number of queries, however
long the history and however many reactions, edits and replies it holds."""
