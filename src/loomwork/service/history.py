"""(being written)"""

from __future__ import annotations

from ..engine import Engine


class History:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
