"""matbackprop.models (under construction)."""
