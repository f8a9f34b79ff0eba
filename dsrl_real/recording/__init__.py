"""Every episode kept: recording runs to disk as LeRobot v3.0 datasets, and reading them back.

See `writer` for the recorder, `reader` for reading, `layout` for the files on disk, `features` and
`stats` for what LeRobot reads, `export` for converting runs recorded in the older v2.1 layout.
"""

from .labels import score_label, shadow_labels
from .layout import KINDS, RecordingError
from .reader import RecordedEpisode, RecordedRun, is_recording, load_episodes, load_recorded_episodes, replay_episodes
from .writer import EpisodeRecording, RunRecorder

__all__ = [
    "KINDS", "EpisodeRecording", "RecordedEpisode", "RecordedRun", "RecordingError", "RunRecorder", "is_recording",
    "load_episodes", "load_recorded_episodes", "replay_episodes", "score_label", "shadow_labels",
]
