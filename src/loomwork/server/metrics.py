"""(being written)"""

from __future__ import annotations

from ..engine import Engine


class Metrics:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
