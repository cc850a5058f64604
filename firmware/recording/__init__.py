"""recording stage."""
