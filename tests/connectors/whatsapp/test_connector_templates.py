"""WhatsApp message templates (listed, cached, sent outside the window), addresses a chat can be
opened with, the pair limiter and the documented capabilities."""

from __future__ import annotations

import asyncio
import itertools
import json
import time

import pytest

from bridge.connector import PermanentDeliveryError, Template
from bridge.connectors.whatsapp import WhatsAppConnector
from bridge.connectors.whatsapp.client import PairLimiter
from bridge.types import RemoteChatID
from tests.contract.harness import FakeHost

from . import connector_support
from . import payloads as wa
from .connector_support import ALICE, BOB, customer_writes, matrix_message
from .harness import WhatsAppHarness
from .simulator import MiB, WhatsAppSimulator

# The fixtures shared by these tests (see connector_support).
harness = connector_support.harness
sim = connector_support.sim


# --------------------------------------------------------------------------- templates


async def test_templates_are_listed_across_pages(
    harness: WhatsAppHarness, sim: WhatsAppSimulator, connector: WhatsAppConnector
) -> None:
    for n in range(130):
        sim.add_template(f"notice_{n:03d}", "en_US", f"Notice {n} for {{{{1}}}}")
    sim.add_template("order_update", "de", "Hallo {{1}}, Bestellung {{2}} ist unterwegs.")
    sim.add_template("gap", "en_US", "{{1}} and {{3}}", category="MARKETING")
    sim.add_template("no_params", "en_US", "Thanks for your message.")
    for status in ("PENDING", "REJECTED", "PAUSED", "DISABLED", "IN_APPEAL"):
        sim.add_template(f"not_{status.lower()}", "en_US", "Hidden {{1}}", status=status)
    templates = await connector.list_templates()
    assert len(templates) == 133
    by_name = {t.name: t for t in templates}
    assert not any(name.startswith("not_") for name in by_name)
    assert by_name["notice_129"] == Template(
        "notice_129", "en_US", "Notice 129 for {{1}}", 1, "UTILITY"
    )
    assert by_name["order_update"].parameters == 2 and by_name["order_update"].language == "de"
    assert by_name["gap"].parameters == 3 and by_name["gap"].category == "MARKETING"
    assert by_name["no_params"].parameters == 0


async def test_template_list_is_cached(
    harness: WhatsAppHarness, sim: WhatsAppSimulator, host: FakeHost
) -> None:
    connector = harness.make_connector(host, template_cache=0.3)
    await connector.start()
    try:
        sim.add_template("first", "en_US", "First")
        assert [t.name for t in await connector.list_templates()] == ["first"]
        sim.add_template("second", "en_US", "Second")
        assert [t.name for t in await connector.list_templates()] == ["first"]
        await asyncio.sleep(0.35)
        assert [t.name for t in await connector.list_templates()] == ["first", "second"]
    finally:
        await connector.stop()


async def test_template_is_sent_and_rendered_outside_the_window(
    harness: WhatsAppHarness, sim: WhatsAppSimulator, connector: WhatsAppConnector
) -> None:
    sim.add_template("order_update", "en_US", "Hello {{1}}, your order {{2}} has shipped.")
    (template,) = await connector.list_templates()
    chat = connector.chat_for_address("+49 170 1234567")
    assert chat == ALICE and not sim.window_open(ALICE)
    sent = await connector.send_template(chat, template, ["Alice", "A-17"])
    (message,) = sim.sent
    assert message.wamid == sent.message_id and message.wa_id == ALICE
    assert message.type == "template"
    assert message.rendered == "Hello Alice, your order A-17 has shipped."
    items = await harness.remote_received()
    assert items[0]["text"] == "Hello Alice, your order A-17 has shipped."


async def test_template_with_wrong_parameters_is_permanent(
    sim: WhatsAppSimulator, connector: WhatsAppConnector
) -> None:
    sim.add_template("order_update", "en_US", "Hello {{1}}, your order {{2}} has shipped.")
    (template,) = await connector.list_templates()
    with pytest.raises(PermanentDeliveryError) as caught:
        await connector.send_template(RemoteChatID(ALICE), template, ["Alice"])
    assert "132000" in caught.value.reason
    gone = Template("retired", "en_US", "Bye", 0)
    with pytest.raises(PermanentDeliveryError) as caught:
        await connector.send_template(RemoteChatID(ALICE), gone, [])
    assert "132001" in caught.value.reason
    assert sim.sent == []


@pytest.mark.parametrize(
    ("address", "chat"),
    [
        ("+49 151 1234567", "491511234567"),
        ("+491511234567", "491511234567"),
        ("+1 (555) 000-1234", "15550001234"),
        ("  +44 20 7946 0958 ", "442079460958"),
    ],
)
async def test_chat_for_address_accepts_phone_numbers(
    connector: WhatsAppConnector, address: str, chat: str
) -> None:
    assert connector.chat_for_address(address) == chat


@pytest.mark.parametrize(
    "address", ["hello", "", "+", "12345", "+49 151 1234567 ext 5", "@alice:example.com", "1" * 16]
)
async def test_chat_for_address_refuses_other_text(
    connector: WhatsAppConnector, address: str
) -> None:
    with pytest.raises(ValueError) as caught:
        connector.chat_for_address(address)
    assert "phone number" in str(caught.value) or "digits" in str(caught.value)


@pytest.mark.parametrize("address", ["0151 1234567", "030 1234567", "+0151 1234567"])
async def test_chat_for_address_refuses_national_numbers(
    connector: WhatsAppConnector, address: str
) -> None:
    """A wa_id starts with the country code, which never starts with 0: a number typed
    without one would open a conversation with a number that does not exist."""
    with pytest.raises(ValueError):
        connector.chat_for_address(address)


async def test_chat_for_address_reads_the_00_prefix_as_international(
    connector: WhatsAppConnector,
) -> None:
    """``0049 151 1234567`` is how much of the world dials +49: it is the customer's number
    (or, at the least, refused), never a wa_id ``0049…`` of nobody."""
    try:
        chat = connector.chat_for_address("0049 151 1234567")
    except ValueError:
        return
    assert chat == "491511234567"


# --------------------------------------------------------------------------- pair limiter


async def test_pair_limiter_spaces_a_burst(capsys: pytest.CaptureFixture[str]) -> None:
    """After ``burst`` messages to one customer the next go one per ``per_user`` seconds (6 s
    in production; 0.25 s here)."""
    interval = 0.25
    limiter = PairLimiter(burst=3, per_user=interval, per_number=0.001)
    start = time.monotonic()
    times = []
    for _ in range(7):
        await limiter.acquire(ALICE)
        times.append(time.monotonic() - start)
    with capsys.disabled():
        print(f"\npair limiter (burst 3, {interval} s): " + ", ".join(f"{t:.3f}" for t in times))
    assert all(t < 0.05 for t in times[:3])
    gaps = [later - earlier for earlier, later in itertools.pairwise(times[2:])]
    assert all(interval * 0.9 <= gap <= interval * 1.6 for gap in gaps), gaps


async def test_pair_limiter_refills_while_idle() -> None:
    limiter = PairLimiter(burst=2, per_user=0.1, per_number=0.001)
    for _ in range(2):
        await limiter.acquire(ALICE)
    await asyncio.sleep(0.25)
    start = time.monotonic()
    for _ in range(2):
        await limiter.acquire(ALICE)
    assert time.monotonic() - start < 0.05


async def test_pair_limit_of_one_customer_does_not_hold_up_others(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The per-customer spacing is per customer: while Alice's next message waits for her
    pair slot, a message to Bob goes out at the number's rate, not after Alice's."""
    limiter = PairLimiter(burst=1, per_user=0.5, per_number=0.001)
    start = time.monotonic()

    async def send(user: str) -> float:
        await limiter.acquire(user)
        return time.monotonic() - start

    alice_first = await send(ALICE)
    alice_second = asyncio.create_task(send(ALICE))
    await asyncio.sleep(0.01)
    bob = await send(BOB)
    alice_second_at = await alice_second
    with capsys.disabled():
        print(f"\nalice {alice_first:.3f}, {alice_second_at:.3f}; bob {bob:.3f}")
    assert alice_second_at >= 0.45
    assert bob < 0.1, f"Bob waited {bob:.3f} s behind Alice's pair limit"


async def test_connector_spaces_sends_to_one_customer(
    harness: WhatsAppHarness,
    sim: WhatsAppSimulator,
    connector: WhatsAppConnector,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """End to end: the connector's own limiter (with a short interval) keeps the simulator's
    pair limit (131056) from ever answering."""
    await customer_writes(sim, wa.text_message(ALICE, "hi"))
    sim.rate_limits.pair_burst, sim.rate_limits.pair_interval = 2, 0.2
    connector.client.limiter = PairLimiter(burst=2, per_user=0.25)
    for n in range(5):
        await connector.send_message(matrix_message(harness, f"Alice: part {n}"))
    times = [s.at - sim.sent[0].at for s in sim.sent]
    with capsys.disabled():
        print("\nconnector sends (burst 2, 0.25 s): " + ", ".join(f"{t:.3f}" for t in times))
    assert sim.rejected == []
    assert times[2] >= 0.2 and times[4] - times[3] >= 0.2


async def test_capabilities_document_the_limits(connector: WhatsAppConnector) -> None:
    caps = connector.capabilities
    # Formatting goes out as WhatsApp's markup: the core hands the connector the HTML.
    assert caps.max_text_length == 4096 and caps.html
    assert caps.max_file_size["m.image"] == 5 * MiB
    assert caps.max_file_size["m.file"] == 100 * MiB
    assert caps.rate_limits["pair"] == pytest.approx(1 / 6)
    assert caps.delivery_deadline == 600.0
    assert json.dumps(dict(caps.max_file_size))
