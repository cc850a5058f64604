"""deter stage."""
