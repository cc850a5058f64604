"""Evaluation harnesses: `vigil-eval` subcommands and scoring scripts over ../shared/data."""
