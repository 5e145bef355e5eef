"""Admin pages for papers and ingest runs: they render, search, filter and escape."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from digest.ingest.run import ingest_bytes
from digest.models import IngestRun, Paper
from tests.conftest import hf_item, hf_json

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(admin_client: Client) -> Client:
    ingest_bytes(
        hf_json(
            [
                hf_item(
                    "2410.00001",
                    "Mamba <script>alert(1)</script> Scaling",
                    githubRepo="https://github.com/a/b",
                ),
                hf_item("2410.00002", "Quantization Tricks", listed="2024-10-26T00:00:00Z"),
                42,
            ]
        ),
        "day.json",
    )
    return admin_client


def test_paper_list_search_and_filters(staff: Client) -> None:
    page = staff.get("/admin/digest/paper/")
    assert page.status_code == 200
    body = page.content.decode()
    assert "Paper Digest admin" in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body and "<script>alert(1)" not in body
    found = staff.get("/admin/digest/paper/", {"q": "quantization"}).content.decode()
    assert "Quantization Tricks" in found and "Mamba" not in found
    by_date = staff.get("/admin/digest/paper/", {"listing_date": "2024-10-26"})
    by_date_body = by_date.content.decode()
    assert "Quantization Tricks" in by_date_body and "Mamba" not in by_date_body
    by_source = staff.get("/admin/digest/paper/", {"source": "hf-json"}).content.decode()
    assert "Quantization Tricks" in by_source
    none = staff.get("/admin/digest/paper/", {"source": "arxiv-rss"}).content.decode()
    assert "Quantization Tricks" not in none


def test_paper_detail_renders(staff: Client) -> None:
    paper = Paper.objects.get(arxiv_id="2410.00001")
    page = staff.get(f"/admin/digest/paper/{paper.pk}/change/")
    assert page.status_code == 200 and "https://github.com/a/b" in page.content.decode()


def test_ingest_run_shows_counts_and_rejected_entries(staff: Client) -> None:
    run = IngestRun.objects.get()
    listing = staff.get("/admin/digest/ingestrun/", {"status": "partial"}).content.decode()
    assert "day.json" in listing
    detail = staff.get(f"/admin/digest/ingestrun/{run.pk}/change/").content.decode()
    assert "entry is not an object" in detail
    assert "partial" in detail


def test_anonymous_users_are_sent_to_login(client: Client, staff: Any) -> None:
    response = client.get("/admin/digest/paper/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
