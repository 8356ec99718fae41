"""What the model server started by hand (a host process or a container) has in common: it is
ready once ``/ping`` answers 200, and it stops on leaving a ``with`` block."""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import TracebackType
from typing import Self

from orchestration.sagemaker_local.endpoints import wait_until_ready


class Served(ABC):
    url: str
    timeout: float

    @abstractmethod
    def launch(self) -> None:
        """Start the server in the background."""

    @abstractmethod
    def stop(self) -> None:
        """SIGTERM, as SageMaker stops a container: the server finishes what it is answering."""

    def start(self) -> Self:
        """Launch, and return once ``/ping`` answers 200; a server that never does is stopped."""
        self.launch()
        try:
            wait_until_ready(f"{self.url}/ping", self.timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
