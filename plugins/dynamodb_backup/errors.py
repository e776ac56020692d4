"""Errors the core raises. Each one says what is wrong and where."""


class BackupError(Exception):
    """Base class for every error this package raises on purpose."""


class CodecError(BackupError):
    """A line or an item could not be encoded or decoded.

    ``where`` is filled in by callers that know the file and line number.
    """

    def __init__(self, message: str, where: str | None = None) -> None:
        self.reason = message
        self.where = where
        super().__init__(f"{where}: {message}" if where else message)

    def at(self, where: str) -> "CodecError":
        """Return a copy of this error located at ``where`` (e.g. ``s3://b/k line 12``)."""
        return CodecError(self.reason, where)


class ParameterError(BackupError):
    """A user-supplied parameter is invalid; the message names the parameter."""


class BackupFolderError(BackupError):
    """A backup folder is incomplete, corrupt or of an unknown format."""


def show(value: object, limit: int = 60) -> str:
    """repr() of a value, shortened so error messages stay one readable line."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
