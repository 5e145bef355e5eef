#!/usr/bin/env python
"""Delivery throughput: plan -> match -> render -> SMTP -> state recorded, end to end.

    .venv/bin/python bench/delivery.py [--subscribers 20000] [--papers 1000] [--pg URL]

In a throw-away PostgreSQL database: ``--papers`` real papers (arXiv RSS sample) as the latest
listing, ``--subscribers`` confirmed subscribers with varied interests. The SMTP server is
Postfix's C sink (``smtp-sink``) when installed, else an aiosmtpd sink (said in the output);
what the sink accepted is counted and must equal what was recorded as sent. Printed, from one
run: digests/s with one worker process and with two, and the rate of a bare loop that only
renders the same digests and pushes them over one SMTP connection. The bare loop runs inside the
one-worker run, after each chunk, over that chunk's digests (its whole time, the reading of what
it shows included, is taken out of the worker's; it starts without the header encodings the
worker just cached for those digests): the machines this is measured on change speed
by a quarter from one minute to the next, and a baseline taken minutes apart from what it is
compared with measured that as much as the code. Peak RSS per worker is printed for two
subscriber counts. The pipeline's time runs from the plan to the last digest recorded; a worker
process's own set-up (imports, Django), which a Celery worker pays once in its life, is printed
apart.
Targets (issue 5): one worker >= 70% of the bare loop; two >= 1.6x one; >= 500/s with two.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import throwaway
from throwaway import DEFAULT_PG, SAMPLE_RSS, peak_rss_kb, run_child, throwaway_database


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Sink:
    """A local SMTP sink that counts accepted messages."""

    def __init__(self) -> None:
        self.port = free_port()
        self.kind = "smtp-sink (Postfix, C)" if shutil.which("smtp-sink") else "aiosmtpd (Python)"
        if shutil.which("smtp-sink"):
            cmd = ["smtp-sink", "-c", "-u", "root", f"127.0.0.1:{self.port}", "1000"]
        else:
            cmd = [sys.executable, __file__, "--aiosmtpd-sink", str(self.port)]
        # Counters go to a file: a pipe nobody reads fills up and stalls the sink.
        self.log = tempfile.NamedTemporaryFile("w+", suffix=".sink")  # noqa: SIM115
        self.proc = subprocess.Popen(
            cmd,
            stdout=self.log,
            stderr=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        self.counted = 0
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)

    def stop(self) -> int:
        os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait(timeout=10)
        self.log.seek(0)
        out = self.log.read()
        counts = re.findall(r"mesg=(\d+)", out) or re.findall(r"accepted=(\d+)", out)
        return int(counts[-1]) if counts else -1


def aiosmtpd_sink(port: int) -> None:
    from aiosmtpd.controller import Controller

    accepted = 0

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            nonlocal accepted
            accepted += 1
            return "250 OK"

    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()

    def stop(*_: Any) -> None:
        controller.stop()
        print(f"accepted={accepted}", flush=True)
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.pause()


def setup_django(smtp_port: int | None = None) -> None:
    if smtp_port:
        os.environ.update({"EMAIL_HOST": "127.0.0.1", "EMAIL_PORT": str(smtp_port)})
    os.environ.setdefault("SEMANTIC_MATCHING", "off")
    throwaway.setup_django(logging.WARNING)


def populate(n_subscribers: int, n_papers: int) -> None:
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from matching_speed import topic_pool

    from digest.ingest.run import IngestOptions, ingest_path
    from digest.models import Paper
    from subscriptions.models import Subscriber

    ingest_path(SAMPLE_RSS, IngestOptions(source="bench"))
    keep = list(Paper.objects.order_by("id").values_list("id", flat=True)[:n_papers])
    Paper.objects.exclude(id__in=keep).update(listing_date=None)
    rng = random.Random(5)
    pool = topic_pool(
        list(Paper.objects.filter(id__in=keep).values_list("title", flat=True)), 3000, rng
    )
    Subscriber.objects.bulk_create(
        [
            Subscriber(
                email=f"r{i}@bench.example",
                status="confirmed",
                delivery_hour=0,
                timezone="UTC",
                interests=", ".join(rng.sample(pool, rng.randint(1, 5))),
                max_papers=rng.choice([5, 10, 20]),
            )
            for i in range(n_subscribers)
        ],
        batch_size=5000,
    )


class BareLoop:
    """Render digests already sent and push them over one SMTP connection, timed: the ceiling
    the pipeline is compared with. What the messages show is read before the clock starts.
    ``seconds`` is the loop's time; ``whole_seconds`` adds that reading, which is no part of
    the pipeline either (the worker's time leaves out all of it)."""

    def __init__(self, smtp_port: int) -> None:
        from django.core.mail import get_connection

        self.connection = get_connection(host="127.0.0.1", port=smtp_port)
        self.connection.open()
        self.seconds = 0.0
        self.whole_seconds = 0.0
        self.sent = 0

    def run(self, digest_ids: list[int]) -> None:
        from digest.delivery.message import build_digest_message, contents_for
        from digest.emails import header_line
        from digest.models import Digest

        began = time.perf_counter()
        digests = Digest.objects.filter(pk__in=digest_ids, state="sent")
        contents = contents_for(list(digests.select_related("subscriber").order_by("id")))
        # The worker has just encoded these digests' headers (subject, recipient, links): a
        # loop of its own would encode them too, not find them in the worker's cache.
        header_line.cache_clear()
        start = time.perf_counter()
        for content in contents:
            build_digest_message(content, connection=self.connection).send()
        end = time.perf_counter()
        self.seconds += end - start
        self.whole_seconds += end - began
        self.sent += len(contents)


def worker(ids_file: str, smtp_port: int, bare_too: bool) -> None:
    """One worker process: send the chunks listed in ``ids_file``, and after each one run the
    bare loop over its digests when ``bare_too``; print its figures. Its clock starts once it
    is set up, as a Celery worker process is set up once and then sends day after day."""
    setup_django(smtp_port)
    from digest.delivery.send import process_chunk

    chunks = json.loads(Path(ids_file).read_text())
    bare = BareLoop(smtp_port) if bare_too else None
    started, sent = time.time(), 0
    for ids in chunks:
        sent += process_chunk(ids).sent
        if bare is not None:
            bare.run(ids)
    figures = {"sent": sent, "rss_kb": peak_rss_kb(), "started": started, "ended": time.time()}
    if bare is not None:
        bare.connection.close()
        figures |= {
            "bare_seconds": bare.seconds,
            "bare_whole_seconds": bare.whole_seconds,
            "bare_sent": bare.sent,
        }
    print(json.dumps(figures))


def pipeline(workers: int, smtp_port: int, tmp: Path, bare_too: bool) -> dict[str, Any]:
    """Plan in this process, then send the chunks with ``workers`` processes. Timed: the plan,
    and from the first worker set up to the last one done, less the bare loop's whole time
    when ``bare_too``; the workers' set-up is reported apart."""
    from django.utils import timezone

    from digest.delivery import plan as planning
    from digest.models import Digest, DigestItem

    DigestItem.objects.all().delete()
    Digest.objects.all().delete()
    start = time.perf_counter()
    chunks = planning.plan(timezone.now())
    planned, launched = time.perf_counter(), time.time()
    shares = [chunks[i::workers] for i in range(workers)]
    procs = []
    for n, share in enumerate(shares):
        path = tmp / f"chunks-{workers}-{n}.json"
        path.write_text(json.dumps(share))
        procs.append(
            subprocess.Popen(
                [
                    *(sys.executable, __file__, "--worker", str(path)),
                    *("--smtp-port", str(smtp_port), *(["--bare"] if bare_too else [])),
                ],
                stdout=subprocess.PIPE,
                text=True,
                env=os.environ.copy(),
            )
        )
    results = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
    bare_seconds = sum(r.get("bare_seconds", 0.0) for r in results)
    sending = max(r["ended"] for r in results) - min(r["started"] for r in results)
    elapsed = planned - start + sending - sum(r.get("bare_whole_seconds", 0.0) for r in results)
    sent = Digest.objects.filter(state="sent").count()
    skipped = Digest.objects.filter(state="skipped").count()
    out = {
        "seconds": elapsed,
        "sent": sent,
        "skipped": skipped,
        "digests": sent + skipped,
        "rss_kb": max(r["rss_kb"] for r in results),
        "reported": sum(r["sent"] for r in results),
        "plan_seconds": planned - start,
        "setup_seconds": max(r["started"] for r in results) - launched,
    }
    if bare_too:
        out["bare"] = {"seconds": bare_seconds, "sent": sum(r["bare_sent"] for r in results)}
    return out


def run_in_database(pg: str, n_subscribers: int, n_papers: int, modes: list[str]) -> dict[str, Any]:
    with throwaway_database(pg, SEMANTIC_MATCHING="off") as env:
        run_child(__file__, ["--populate", str(n_subscribers), "--papers", str(n_papers)], env)
        return run_child(__file__, ["--measure", ",".join(modes)], env)


def measure(modes: list[str]) -> None:
    sink = Sink()
    setup_django(sink.port)
    results: dict[str, Any] = {"sink": sink.kind}
    with tempfile.TemporaryDirectory() as tmp:
        for mode in modes:
            workers = int(mode.removesuffix("+bare"))
            results[mode] = pipeline(workers, sink.port, Path(tmp), mode.endswith("+bare"))
    results["sink_accepted"] = sink.stop()
    print(json.dumps(results))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subscribers", type=int, default=20_000)
    parser.add_argument("--papers", type=int, default=1000)
    parser.add_argument(
        "--pg",
        default=DEFAULT_PG,
    )
    parser.add_argument("--populate", type=int)
    parser.add_argument("--measure")
    parser.add_argument("--worker")
    parser.add_argument("--smtp-port", type=int)
    parser.add_argument("--bare", action="store_true")
    parser.add_argument("--aiosmtpd-sink", type=int)
    args = parser.parse_args()
    if args.aiosmtpd_sink:
        aiosmtpd_sink(args.aiosmtpd_sink)
    elif args.populate is not None:
        setup_django()
        populate(args.populate, args.papers)
    elif args.measure:
        measure(args.measure.split(","))
    elif args.worker:
        worker(args.worker, args.smtp_port, args.bare)
    else:
        report(args)


def spin(seconds: float) -> None:
    """Pure-Python work for ``seconds``; prints how much was done."""
    end, done = time.perf_counter() + seconds, 0
    while time.perf_counter() < end:
        sum(range(10_000))
        done += 1
    print(done)


def two_process_scaling(seconds: float = 1.0, rounds: int = 5) -> float:
    """How much more CPU-bound Python work two processes do than one, on this machine now:
    the ceiling of "two workers vs one" before any database or SMTP server takes its share.
    One and two processes take turns, ``rounds`` times: the machine's speed moves from one
    minute to the next (a single pair of 3-second runs gave from 1.6x to 2.3x)."""

    def run(count: int) -> int:
        cmd = [sys.executable, "-c", f"import delivery; delivery.spin({seconds})"]
        here = Path(__file__).parent
        children = [
            subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=here) for _ in range(count)
        ]
        return sum(int(child.communicate()[0]) for child in children)

    one = two = 0
    for _ in range(rounds):
        one += run(1)
        two += run(2)
    return two / one


def report(args: argparse.Namespace) -> None:
    before = two_process_scaling()
    full = run_in_database(args.pg, args.subscribers, args.papers, ["1+bare", "2"])
    after = two_process_scaling()
    small = run_in_database(args.pg, args.subscribers // 4, args.papers, ["2"])
    one, two = full["1+bare"], full["2"]
    bare = one["bare"]
    rate = lambda r: r["sent"] / r["seconds"]  # noqa: E731
    print(
        f"{args.subscribers:,} subscribers, {args.papers:,} new papers; SMTP sink: "
        f"{full['sink']}; sink accepted {full['sink_accepted']:,} messages"
    )
    if not shutil.which("smtp-sink"):
        print(
            "  (no smtp-sink: the Python sink takes much of a core from the workers, which lowers"
            " every figure and most the two workers'; Debian's postfix package has smtp-sink)"
        )
    print(
        f"1 worker:  {rate(one):7.0f} digests/s ({one['sent']:,} sent, {one['skipped']:,} "
        f"skipped as empty, {one['seconds']:.1f} s, of which planning {one['plan_seconds']:.1f} s)"
        f", peak RSS {one['rss_kb'] / 1024:.0f} MiB; worker set-up (imports, Django), not "
        f"counted: {one['setup_seconds']:.1f} s"
    )
    print(
        f"2 workers: {rate(two):7.0f} digests/s ({two['sent']:,} sent, {two['seconds']:.1f} s)"
        f" = {rate(two) / rate(one):.2f}x one worker   [targets >= 1.6x, >= 500/s]"
    )
    print(
        f"  (the machine, just before and after: two CPU-bound Python processes did {before:.2f}x"
        f" and {after:.2f}x the work of one)"
    )
    print(
        f"bare loop (render + SMTP, one connection), after each chunk of the one-worker run: "
        f"{rate(bare):.0f} messages/s ({bare['sent']:,} sent); one worker runs at "
        f"{rate(one) / rate(bare):.1%} of it   [target >= 70%]"
    )
    quarter = small["2"]
    print(
        f"peak RSS per worker: {quarter['rss_kb'] / 1024:.0f} MiB at "
        f"{args.subscribers // 4:,} subscribers vs {two['rss_kb'] / 1024:.0f} MiB at "
        f"{args.subscribers:,}"
    )
    expected = one["sent"] + two["sent"] + bare["sent"]
    if full["sink_accepted"] >= 0 and full["sink_accepted"] != expected:
        raise SystemExit(
            f"the sink accepted {full['sink_accepted']} messages, {expected} were recorded as sent"
        )


if __name__ == "__main__":
    main()
