"""matbackprop.linalg (under construction)."""
