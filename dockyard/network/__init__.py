"""Container networking (see the package docstring once written)."""
