"""The one exception type a user sees: a one-line message, printed without a traceback."""


class FacetraitsError(Exception):
    """Bad input or bad settings. The message names the file, row, column or config key."""


class ConfigError(FacetraitsError):
    """A config.yaml (or --set) problem: unknown key, wrong type, value out of range."""


class DataError(FacetraitsError):
    """A ratings, landmarks or image problem: missing file, bad row, unreadable image."""
