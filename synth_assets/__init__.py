"""synth_assets: a Dagster factory for validated, versioned synthetic training data."""
