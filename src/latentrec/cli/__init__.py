"""The ``latentrec`` command line: a thin layer over the library."""
