"""Pure data and decisions: no I/O here, so everything is unit-tested without servers."""
