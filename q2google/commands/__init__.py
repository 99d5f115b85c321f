"""The ``q2google`` command groups, one module each; :mod:`q2google.cli` assembles them."""
