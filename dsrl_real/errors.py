"""The one base class of every failure a user can cause and fix (bad config, missing file, server down).

The CLI turns a `UserError` into its message, one sentence saying what is wrong and what to do, and
exit code 2; a traceback only with `--debug`. Anything else is a bug in this project.
"""


class UserError(Exception):
    """A problem the user can fix; the message is one sentence that says how."""


# Here rather than in recording/: an unreadable `.npz` episode in data/ is one too, and data/ does not import recording/.
class RecordingError(UserError, ValueError):
    """A recording problem the user can act on; the message says what to do."""


class MissingExtraError(UserError, ImportError):
    """An optional dependency that is not installed; the message names the pip extra that brings it.
    An ImportError too, so code that treats a missing optional package as 'feature off' keeps doing so."""
