"""medseg's built-in plugins (installed as ``medseg_plugins``; entry-point group ``medseg``)."""
