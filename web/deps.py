"""What routes depend on, typed once: ``engine: DbEngine`` in a route's parameters is the app's database engine."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.engine import Engine


def engine_of(request: Request) -> Engine:
    return request.app.state.engine


DbEngine = Annotated[Engine, Depends(engine_of)]
