"""``cancel_and_wait``: background tasks stop even when a cancellation gets lost."""

from __future__ import annotations

import asyncio

from bridge.tasks import cancel_and_wait


async def test_task_that_loses_a_cancellation_still_stops() -> None:
    """Python 3.11's ``wait_for`` returns the result, dropping the cancel, when both arrive in
    the same loop turn; a loop around it carries on. Modelled here by swallowing the first."""
    swallowed = 0

    async def stubborn() -> None:
        nonlocal swallowed
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                if swallowed:
                    raise
                swallowed += 1
                asyncio.current_task().uncancel()  # type: ignore[union-attr]

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    await asyncio.wait_for(cancel_and_wait([task]), timeout=5)
    assert task.cancelled()
    assert swallowed == 1


async def test_errors_of_stopped_tasks_are_consumed_and_none_is_skipped() -> None:
    async def fails() -> None:
        raise RuntimeError("boom")

    failed = asyncio.create_task(fails())
    await asyncio.sleep(0)
    sleeping = asyncio.create_task(asyncio.sleep(3600))
    await cancel_and_wait([failed, None, sleeping])
    assert sleeping.cancelled()
    assert isinstance(failed.exception(), RuntimeError)
