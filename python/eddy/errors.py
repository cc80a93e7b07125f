"""The one exception the package raises for what the cloud refused or could not do."""


class EddyError(RuntimeError):
    """Something about the cloud failed; the message says what and what to do."""
