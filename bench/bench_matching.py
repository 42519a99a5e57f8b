"""Benchmark: matching a bulk upload's PDFs to awaiting orders, and rendering a page preview.

    DATABASE_URL=postgres://.../hcoint_bench_1000 python bench/bench_matching.py   # a seeded database

`make bench` runs it on each seeded database (bench/seed.py) and prints its figures. It
makes 50 notes of 5 pages each for 50 of the database's awaiting orders, written the ways
notes come (the order id in the file name; MRN and date of birth in the text in several
forms; the name only), then times, one file after another as a request would: reading the
first pages' text (orders/pdf/preview.first_pages_text, a child process per file) and
`orders.matching.propose` against all awaiting orders; then the same with the texts read as
a batch (first_pages_texts, one child for all 50) and matched together (propose_all). Then
it renders page 1 of one note (orders/pdf/preview.render_page) several times. Prints one JSON object: wall-clock
times, and the CPU time the matching took in this process and its children (a figure that
other work on a shared machine does not inflate; PostgreSQL's own time is not in it). Not a test.
"""

import json
import random
import resource
import statistics
import sys
import time

from benchenv import setup_django

setup_django()

from orders.matching import awaiting_orders, propose, propose_all  # noqa: E402
from orders.pdf.preview import first_pages_text, first_pages_texts, render_page  # noqa: E402
from tests.pdf_text import text_pdf  # noqa: E402

FILES = 50
PAGES = 5
RENDERS = 10
FILLER = "Assessment and plan: continue current medication, follow up in two weeks. " * 6


def cpu_seconds():
    """CPU time of this process and of its finished children (the text extraction's)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def dob_written(dob, style):
    return [dob.isoformat(), dob.strftime("%m/%d/%Y"), dob.strftime("%-d %b %Y"), dob.strftime("%B %-d, %Y")][style]


def note_for(order, number):
    """(file name, PDF bytes, how it should match) for `order`, in one of three styles."""
    style = number % 3
    name = f"{order.patient_first_name} {order.patient_last_name}"
    if style == 0:
        file_name, header, expect = f"{order.ehr_order_id}.pdf", f"Clinical note\n{name}", "preselected"
    elif style == 1:
        mrn = order.patient_mrn.removeprefix("MRN")
        header = f"Patient: {name}\nMRN#: {mrn}\nDOB: {dob_written(order.patient_dob, number % 4)}"
        file_name, expect = f"scan-{number:03d}.pdf", "preselected"
    else:
        file_name, header, expect = f"scan-{number:03d}.pdf", f"Patient: {name}", "asks"
    pages = [f"{header}\n{FILLER}"] + [f"Page {n}\n{FILLER}" for n in range(2, PAGES + 1)]
    return file_name, text_pdf(pages), expect


def main():
    awaiting = list(awaiting_orders().exclude(patient_dob=None).order_by("pk"))
    if len(awaiting) < FILES:
        raise SystemExit(f"the database has {len(awaiting)} awaiting orders; seed at least 1,000 orders")
    chosen = random.Random(7).sample(awaiting, FILES)
    notes = [(order, *note_for(order, number)) for number, order in enumerate(chosen)]

    outcomes = {
        "preselected right": 0,
        "preselected wrong": 0,
        "asked, right order listed": 0,
        "asked, not listed": 0,
        "as its style expects": 0,
    }
    started, cpu_started = time.perf_counter(), cpu_seconds()
    text_s = 0.0
    for order, file_name, pdf, expect in notes:
        text_started = time.perf_counter()
        text = first_pages_text(pdf)
        text_s += time.perf_counter() - text_started
        proposal = propose(file_name, text)
        if proposal.preselected is not None:
            outcomes["preselected right" if proposal.preselected == order else "preselected wrong"] += 1
        elif order in [candidate.order for candidate in proposal.candidates]:
            outcomes["asked, right order listed"] += 1
        else:
            outcomes["asked, not listed"] += 1
        outcomes["as its style expects"] += (expect == "preselected") == (proposal.preselected == order)
    total_s, total_cpu_s = time.perf_counter() - started, cpu_seconds() - cpu_started

    # The same files read as a batch upload can: all texts from one child, all matched at once.
    started, cpu_started = time.perf_counter(), cpu_seconds()
    texts = first_pages_texts([note[2] for note in notes])
    proposals = propose_all([(note[1], text) for note, text in zip(notes, texts, strict=True)])
    batch_preselected = sum(proposal.preselected == note[0] for note, proposal in zip(notes, proposals, strict=True))
    batch_s, batch_cpu_s = time.perf_counter() - started, cpu_seconds() - cpu_started

    pdf = notes[0][2]
    render_page(pdf)  # the first child start pays for cold caches
    renders = []
    cpu_started = cpu_seconds()
    for _ in range(RENDERS):
        render_started = time.perf_counter()
        png = render_page(pdf)
        renders.append((time.perf_counter() - render_started) * 1000)
    render_cpu_ms = (cpu_seconds() - cpu_started) * 1000 / RENDERS
    print(
        json.dumps(
            {
                "files": FILES,
                "pages_per_file": PAGES,
                "awaiting_orders": len(awaiting),
                "total_s": total_s,
                "text_s": text_s,
                "propose_s": total_s - text_s,
                "cpu_s": total_cpu_s,
                "batch_s": batch_s,
                "batch_cpu_s": batch_cpu_s,
                "batch_preselected_right": batch_preselected,
                "expected_preselected": sum(1 for note in notes if note[3] == "preselected"),
                "outcomes": outcomes,
                "render_ms_p50": statistics.median(renders),
                "render_ms_max": max(renders),
                "render_cpu_ms": render_cpu_ms,
                "png_kib": len(png) / 1024,
            }
        )
    )


if __name__ == "__main__":
    sys.exit(main())
