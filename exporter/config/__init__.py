"""The configuration: flags and environment, the YAML file, and reloading it."""
