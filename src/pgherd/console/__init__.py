"""The web console (``pgherd console``): FastAPI pages with htmx, talking to the agents
through the same clients and orchestration as the CLI (docs/console.md)."""
