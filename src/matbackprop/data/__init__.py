"""matbackprop.data (under construction)."""
