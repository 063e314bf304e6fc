"""matbackprop.train (under construction)."""
