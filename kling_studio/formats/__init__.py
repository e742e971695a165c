"""The studio's date and time formats, per language (see FORMAT_MODULE_PATH in settings)."""
