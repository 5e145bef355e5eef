"""The embedded broker: kombu's filesystem transport, made safe for several processes.

kombu's own ``_put`` creates the message file and then writes it, so a consumer polling the
folder can open the empty file in between, fail to decode it and stop the worker (seen with
beat and a worker sharing the folder). Here a message is written under a name the consumer
ignores and renamed into place, which is atomic on POSIX file systems.
"""

from __future__ import annotations

import os
import uuid
from time import monotonic
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import TRANSPORT_ALIASES, filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = os.path.join(self.data_folder_out, f".{name}.partial")  # not "*.msg"
        try:
            with open(partial, "wb") as out:
                out.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel


def install() -> None:
    """Make ``filesystem://`` mean this transport in every process that loads the app."""
    TRANSPORT_ALIASES["filesystem"] = "digest.broker:Transport"
