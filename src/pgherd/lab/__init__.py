"""A whole cluster on one machine, for demos, tests and learning."""
