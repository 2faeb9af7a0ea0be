"""Tools for plugin authors: :mod:`.scaffold` writes a new plugin package that passes its tests."""
