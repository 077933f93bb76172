"""Queue intake: how fast no-op jobs are taken and finished, stock Procrastinate worker vs
this product's runner, on the same workload in the same run.

Defers N no-op jobs, lets Procrastinate's own worker run them all (``app.run_worker_async``,
one fetch and one finish round trip per job), then defers N more and lets the runner run them
through a no-op handler (many jobs per round trip). Each side is timed from start to the last job finished,
and every job is checked to have succeeded exactly once.

    .venv/bin/python bench/intake.py --jobs 20000
"""

from __future__ import annotations

import argparse
import asyncio
import time

from common import describe_machine, setup_django

QUEUE = "bench.intake"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20000)
    parser.add_argument("--stock-concurrency", type=int, default=16)
    parser.add_argument("--runner-capacity", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=1, help="Alternate stock/runner this often.")
    options = parser.parse_args()
    setup_django()

    from procrastinate.contrib.django import app

    from gpu_runner.handlers import JobHandler
    from gpu_runner.runner import Runner

    @app.task(name="bench.noop", queue=QUEUE)
    async def noop(n: int) -> None:
        return None

    class NoopHandler(JobHandler):
        """The runner's side of ``bench.noop``: claims each job and ends it at once."""

        task_name = "bench.noop"

        def claim(self, jobs):
            return {job.id: True for job in jobs}

        def start(self, runs):
            futures = [asyncio.get_running_loop().create_future() for _ in runs]
            for future in futures:
                future.set_result(None)
            return futures

        def store(self, runs):
            pass

        def fail(self, runs):
            pass

        def release(self, jobs):
            pass

    async def defer(count: int) -> None:
        for start in range(0, count, 5000):
            await noop.batch_defer_async(*({"n": n} for n in range(start, min(start + 5000, count))))

    async def stock() -> None:
        await app.run_worker_async(
            queues=[QUEUE], wait=False, concurrency=options.stock_concurrency,
            install_signal_handlers=False,
        )

    async def runner() -> None:
        await Runner(
            app=app, queues=[QUEUE], handlers=[NoopHandler()], capacity=options.runner_capacity,
            heartbeat_interval=5.0, shutdown_grace=5.0,
        ).run(wait=False, install_signal_handlers=False)

    async def timed(run) -> float:
        await clear()
        await defer(options.jobs)
        started = time.perf_counter()
        await run()
        elapsed = time.perf_counter() - started
        await check()
        return options.jobs / elapsed

    async def clear() -> None:
        async with app.connector.pool.connection() as conn:
            await conn.execute("TRUNCATE procrastinate_jobs, procrastinate_events CASCADE")

    async def check() -> None:
        async with app.connector.pool.connection() as conn:
            rows = await (await conn.execute(
                "SELECT status, count(*), max(attempts) FROM procrastinate_jobs GROUP BY status"
            )).fetchall()
        counts = {status: (n, attempts) for status, n, attempts in rows}
        assert counts == {"succeeded": (options.jobs, 1)}, counts

    async def bench() -> tuple[list[float], list[float]]:
        import logging

        logging.getLogger("procrastinate").setLevel(logging.WARNING)
        logging.getLogger("gpu_runner").setLevel(logging.WARNING)
        stock_rates, runner_rates = [], []
        with app.replace_connector(app.connector.get_worker_connector()):
            async with app.open_async():
                for _ in range(options.rounds):
                    stock_rates.append(await timed(stock))
                    runner_rates.append(await timed(runner))
        return stock_rates, runner_rates

    stock_rates, runner_rates = asyncio.run(bench())
    best_stock, best_runner = max(stock_rates), max(runner_rates)
    print(f"{describe_machine()}; {options.jobs} no-op jobs per side, {options.rounds} round(s)")
    print(f"stock Procrastinate worker (concurrency {options.stock_concurrency}): "
          + ", ".join(f"{rate:,.0f}" for rate in stock_rates) + " jobs/s")
    print(f"runner worker (capacity {options.runner_capacity}):                 "
          + ", ".join(f"{rate:,.0f}" for rate in runner_rates) + " jobs/s")
    print(f"ratio runner/stock (best of each): {best_runner / best_stock:.1f}×")


if __name__ == "__main__":
    main()
