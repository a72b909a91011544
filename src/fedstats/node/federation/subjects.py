"""The NATS names of one federation: streams, subjects, inbox prefixes.

One place decides them, because the agent publishes and consumes on them and the server
configuration grants permissions on them: if the two disagreed, centralized mode would
either break or leak. Two streams per federation, so that permissions can be given per
stream (JetStream permissions are per stream API subject, not per message):

    FEDSTATS_<fed>_STATS   fedstats.<fed>.stats.<peer>.<chunk>   one snapshot per peer
    FEDSTATS_<fed>_CTL     fedstats.<fed>.ctl.admin.<what>       schedule, contract (admin)
                           fedstats.<fed>.ctl.admin.member.<peer> removal, readmission (admin)
                           fedstats.<fed>.ctl.sync.<peer>        full sync requests

plus the core (not stored) request subject fedstats.<fed>.join, answered by the admin,
and the core subjects of GLM rounds (`rounds.py`):

    fedstats.<fed>.glm.ask                 the admin's round request: fit, round, coefficients
    fedstats.<fed>.glm.reply.<peer>        one member's contribution (only the admin reads it)
    fedstats.<fed>.stats.<admin>.model.<id> a finished GLM, on the statistics stream: exactly
                                           the members that may merge (and so build) read it

and those of FATE-Flow jobs across parties (`flowlink.py`):

    fedstats.<fed>.flow.req.<peer>         a member's job request to the admin (answered)
    fedstats.<fed>.flow.ask.<peer>         the admin's call on one member's party (answered)
Each user gets its own inbox prefix `_INBOX_<user>`, so no one can read others' replies.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

# The control stream carries small messages (schedules, contracts, sync requests, joins),
# the newest per subject: it never needs the statistics stream's memory, and giving it the
# same reservation made a server with room for one big stream refuse the second.
CONTROL_STREAM_MAX_BYTES = 16 << 20
DEFAULT_STREAM_MAX_MEMORY = 256 << 20
# What one peer's unfinished chunked messages may hold at a receiver: a few times the
# largest snapshot expected (a d=1000 upper triangle is 4 MB); FedConfig overrides it.
DEFAULT_PEER_PENDING = 64 << 20

_SAFE = re.compile(r"[A-Za-z0-9_-]+")


def token(name: str) -> str:
    """`name` as one NATS subject token / stream-name part (unsafe names get a hash suffix)."""
    if _SAFE.fullmatch(name):
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:10]
    return (re.sub(r"[^A-Za-z0-9_-]", "_", name)[:40] or "x") + "_" + digest


@dataclass(frozen=True)
class Names:
    fed: str  # already a token

    @classmethod
    def of(cls, fed_name: str) -> Names:
        return cls(token(fed_name))

    @property
    def prefix(self) -> str:
        return f"fedstats.{self.fed}"

    @property
    def stats_stream(self) -> str:
        return f"FEDSTATS_{self.fed}_STATS"

    @property
    def ctl_stream(self) -> str:
        return f"FEDSTATS_{self.fed}_CTL"

    @property
    def stats_all(self) -> str:
        return f"{self.prefix}.stats.>"

    def stats(self, peer: str) -> str:
        return f"{self.prefix}.stats.{token(peer)}"

    def chunk(self, peer: str, index: int) -> str:
        return f"{self.stats(peer)}.{index}"

    @property
    def ctl_all(self) -> str:
        return f"{self.prefix}.ctl.>"

    def admin_ctl(self, what: str) -> str:
        return f"{self.prefix}.ctl.admin.{what}"

    def member(self, peer: str) -> str:
        """Where the admin announces `peer`'s removal or readmission (newest kept)."""
        return self.admin_ctl(f"member.{token(peer)}")

    def durable(self, peer: str, which: str) -> str:
        """The durable consumer `peer` reads the `which` ("stats"|"ctl") stream through."""
        return f"{self.fed}_{token(peer)}_{which}"

    def sync(self, peer: str) -> str:
        return f"{self.prefix}.ctl.sync.{token(peer)}"

    @property
    def join(self) -> str:
        return f"{self.prefix}.join"

    @property
    def glm_ask(self) -> str:
        return f"{self.prefix}.glm.ask"

    def glm_reply(self, peer: str) -> str:
        return f"{self.prefix}.glm.reply.{token(peer)}"

    @property
    def glm_replies(self) -> str:
        return f"{self.prefix}.glm.reply.*"

    def flow_req(self, peer: str) -> str:
        return f"{self.prefix}.flow.req.{token(peer)}"

    @property
    def flow_reqs(self) -> str:
        return f"{self.prefix}.flow.req.*"

    def flow_ask(self, peer: str) -> str:
        return f"{self.prefix}.flow.ask.{token(peer)}"

    def model(self, peer: str, model_id: str) -> str:
        """Where `peer` (the admin) publishes a finished GLM `model_id` (newest kept)."""
        return f"{self.models_of(peer)}{token(model_id)}"

    def models_of(self, peer: str) -> str:
        """The prefix (dot included) of every model subject of `peer`."""
        return f"{self.stats(peer)}.model."


def inbox_prefix(user: str) -> str:
    return f"_INBOX_{token(user)}"
