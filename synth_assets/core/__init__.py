"""Pure logic of the factory. Nothing in this package imports dagster."""
