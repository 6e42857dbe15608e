"""Container tests. A package, so that its conftest.py is ``docker.conftest`` and never takes
the place of ``tests/conftest.py`` in ``sys.modules``."""
