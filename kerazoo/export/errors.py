"""The error every export module raises."""


class ExportError(RuntimeError):
    """An export that cannot be written or does not match its Keras model."""
