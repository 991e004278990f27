"""One transaction in one thread-pool hop, for ``async def`` routes.

Most routes are plain ``def`` functions with a ``SessionDep``: FastAPI runs each sync dependency
and the route in the thread pool, so a request makes four or five thread hand-offs and, under
load, thirty-odd threads fight over the GIL (docs/performance.md measured 20-27 % of the server's
CPU in the kernel at 32 connections). The diary capture routes are ``async def`` and, where they
use a SQLAlchemy session (SQLite, and the test suite), run their whole unit of work through
``ThreadUnitOfWork.run``: one hop, the work function gets a Session, the transaction commits
before ``run`` returns (a 2xx means committed) and rolls back on any exception, which then
reaches the error handlers. Waiting for SQLite's one writer connection never blocks the loop.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol, TypeVar

import anyio.to_thread
from sqlalchemy.engine import Engine
from sqlmodel import Session

T = TypeVar("T")
Work = Callable[[Session], T]


class UnitOfWork(Protocol):
    async def run(self, work: Work[T]) -> T:
        """Run ``work`` in one transaction: commit if it returns, roll back if it raises."""
        ...


class ThreadUnitOfWork:
    """A synchronous session factory's unit of work in one thread-pool hop."""

    def __init__(self, sessions: Callable[[], AbstractContextManager[Session]]) -> None:
        self.sessions = sessions

    def _run(self, work: Work[T]) -> T:
        with self.sessions() as session:
            try:
                result = work(session)
                session.commit()
            except BaseException:
                session.rollback()
                raise
            return result

    async def run(self, work: Work[T]) -> T:
        return await anyio.to_thread.run_sync(self._run, work)


def engine_sessions(engine: Engine) -> Callable[[], AbstractContextManager[Session]]:
    @contextmanager
    def sessions() -> Iterator[Session]:
        with Session(engine, expire_on_commit=False) as session:
            yield session

    return sessions
