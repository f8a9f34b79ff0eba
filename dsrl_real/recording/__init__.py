"""Every episode kept: recording runs to disk in the LeRobot v2.1 layout, and reading them back.

See `writer` for the recorder, `reader` for reading, `layout` for the files on disk.
"""

from .labels import score_label, shadow_labels
from .layout import KINDS, RecordingError
from .reader import RecordedEpisode, RecordedRun, is_recording, load_episodes, load_recorded_episodes, replay_episodes
from .writer import EpisodeRecording, RunRecorder

__all__ = [
    "KINDS", "EpisodeRecording", "RecordedEpisode", "RecordedRun", "RecordingError", "RunRecorder", "is_recording",
    "load_episodes", "load_recorded_episodes", "replay_episodes", "score_label", "shadow_labels",
]
