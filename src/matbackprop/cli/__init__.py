"""matbackprop.cli (under construction)."""
