"""matbackprop.nn (under construction)."""
