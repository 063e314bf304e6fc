"""matbackprop.metrics (under construction)."""
