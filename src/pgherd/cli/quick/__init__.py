"""The quick commands: what people and PostgreSQL run often, started without Typer, rich
or pydantic (issue 21; ~0.05 s against ~0.4 s for the full CLI).

``pgherd.cli.entry`` recognises them by their words (``cluster show``…) and parses their
options itself (:mod:`.args`); anything it does not fully understand — ``--help``, a
mistyped option, a value Click would refuse — goes to the full Typer CLI, which answers
as it always did. Each command's work is one function here, which the Typer command
calls too, so both ways run the same code. They read the config through
:mod:`pgherd.config_cache`, agents' statuses as :class:`~pgherd.model.status_lite.LiteStatus`,
and print through :mod:`pgherd.cli.text` (rich only on a terminal).
tests/unit/test_quick_imports.py runs them in fresh interpreters and fails when Typer,
rich, pydantic or FastAPI is imported on the way.
"""
