"""What a FATE job can fail with, below the facade (which maps each to FATE's retcodes).

    FlowJobError          base
    ├── JobNotFound       no such job / task / model (FATE answers 101/102/100 by endpoint)
    ├── JobRefused        the submission (or a stop, rerun, deploy) is not acceptable: 101
    └── ComponentFailed   a task failed while running; the job ends `failed` with this text
        └── Interrupted   the job was stopped or ran out of time: `canceled` / `timeout`
"""

from __future__ import annotations


class FlowJobError(Exception):
    """Base of the job machinery's errors; the message says what is wrong."""


class JobNotFound(FlowJobError):
    pass


class JobRefused(FlowJobError):
    pass


class ComponentFailed(FlowJobError):
    pass


class Interrupted(ComponentFailed):
    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status
