"""FATE-Flow jobs on the node's exact engine: the service below the `/v1` facade.

    runner.py      FlowJobs: submit, the FIFO scheduler thread, the state machine, deploy
    sites.py       party id → site (LocalSite here; a cross-party dispatcher plugs in)
    components.py  the DSL's modules by name (context.py, preprocess.py, learners.py):
                   coordinators over their parties' sites
    ops.py         what a party does with its own rows (the only code that sees rows)
    frames.py      a party's data between components; exact pooled moments
    evaluation.py  FATE's Evaluation metrics (pure)
    dag.py, conf.py   DSL order and the predict DSL; runtime conf resolution (pure)
    logs.py        the job's log files, as FATE lays them out
    errors.py      the tree the facade maps onto FATE's retcodes
"""

from .errors import ComponentFailed, FlowJobError, Interrupted, JobNotFound, JobRefused
from .runner import FlowJobs
from .sites import LocalSite, Site, Sites, TableSource

__all__ = ["ComponentFailed", "FlowJobError", "FlowJobs", "Interrupted", "JobNotFound",
           "JobRefused", "LocalSite", "Site", "Sites", "TableSource"]
