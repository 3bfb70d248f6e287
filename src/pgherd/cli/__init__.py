"""What people type: the ``pgherd`` command (Typer + rich)."""
