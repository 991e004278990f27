"""Dependencies of the scores routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.scores.outcome_summaries import SummaryCache


async def get_summary_cache(request: Request) -> SummaryCache:
    """The API process's outcome-summary cache (``create_app`` makes it)."""
    # async: a sync dependency would cost a thread hop.
    cache: SummaryCache = request.app.state.outcome_cache
    return cache


SummaryCacheDep = Annotated[SummaryCache, Depends(get_summary_cache)]
