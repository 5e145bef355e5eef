"""A person in a real browser: sign up, confirm from the mail, manage, unsubscribe.

Headless Chromium (Debian's package) driven by Playwright; the confirmation mail travels over
real SMTP to an aiosmtpd server started by the test. Screenshots go to artifacts/browser/.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from subscriptions.models import Subscriber
from tests.browser import Recorder, browser_page, screenshot, smtp_server, text_part

__all__ = ["browser_page", "smtp_server"]  # fixtures used below

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]


def test_signup_confirm_manage_and_unsubscribe_in_a_browser(
    live_server: Any, browser_page: Any, smtp_server: Recorder, eager: None, settings: Any
) -> None:
    settings.SITE_URL = live_server.url
    page = browser_page
    page.goto(live_server.url + "/")
    assert "Get trending papers in your email inbox" in page.content()
    page.fill("#id_email", "ada@example.org")
    page.fill("#id_interests", 'state space models, "mixture of experts", -survey')
    screenshot(page, "1-home-filled")
    page.click("button[type=submit] >> text=Subscribe")
    page.wait_for_url("**/subscribe/sent/")
    assert "Check your inbox" in page.content()
    screenshot(page, "2-check-inbox")

    message = smtp_server.wait_for(1)
    assert message["To"] == "ada@example.org"
    confirm = re.search(r"https?://\S+/confirm/\S+/", text_part(message))
    assert confirm is not None
    assert Subscriber.objects.get().status == "pending"

    page.goto(confirm[0])
    screenshot(page, "3-confirm-button")
    assert Subscriber.objects.get().status == "pending"  # opening the link is not confirming
    page.click("#confirm-button")
    page.wait_for_selector("#confirmed-message")
    screenshot(page, "4-confirmed")
    assert Subscriber.objects.get().status == "confirmed"

    page.click("#manage-link")
    page.wait_for_selector("#save-button")
    page.fill("#id_interests", "quantization, diffusion models")
    page.click("#save-button")
    page.wait_for_selector("text=Your preferences are saved.")
    screenshot(page, "5-manage-saved")
    assert Subscriber.objects.get().interests == "quantization, diffusion models"

    page.click("#unsubscribe-button")
    page.wait_for_selector("text=You are unsubscribed")
    screenshot(page, "6-unsubscribed")
    assert Subscriber.objects.get().status == "unsubscribed"
    assert len(smtp_server.messages) == 1  # nothing but the confirmation was mailed
