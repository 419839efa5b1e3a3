"""The refund ledger's pure rules: limits, currency, repeats and repeated partial refunds."""

from __future__ import annotations

import pytest

from oms_returns.domain import Payment, Refund, RefundRequest, decide_refund, refund_id_for

PAID = Payment("O1", 1_000, "EUR", "PAY-1")


def request(amount: int, key: str = "K1", *, currency: str = "EUR", order_id: str = "O1") -> RefundRequest:
    return RefundRequest(order_id, key, amount, currency, "damaged")


def recorded(amount: int, key: str = "K1", *, total: int | None = None, order_id: str = "O1") -> Refund:
    return Refund(refund_id_for(key), key, order_id, amount, "EUR", "damaged", total or amount)


class TestWithinWhatWasPaid:
    """A refund is issued while the order's refunds stay within what was paid."""

    def test_a_partial_refund_is_issued_with_the_running_total(self) -> None:
        decision = decide_refund(request(300), PAID, already_refunded=200)
        assert decision.rejected is None
        assert decision.repeat is None
        assert decision.new == Refund(refund_id_for("K1"), "K1", "O1", 300, "EUR", "damaged", 500)
        assert decision.refund == decision.new

    def test_refunding_exactly_what_was_paid_is_allowed(self) -> None:
        decision = decide_refund(request(1_000), PAID, already_refunded=0)
        assert decision.new is not None
        assert decision.new.total_refunded == 1_000

    def test_the_last_minor_unit_is_allowed_and_one_more_is_not(self) -> None:
        assert decide_refund(request(1), PAID, already_refunded=999).new is not None
        rejected = decide_refund(request(2), PAID, already_refunded=999)
        assert rejected.refund is None
        assert (
            rejected.rejected == "refund of 2 exceeds what is left to refund (1 of 1000 EUR paid, 999 already refunded)"
        )

    def test_more_than_was_paid_is_rejected_at_once(self) -> None:
        decision = decide_refund(request(1_001), PAID, already_refunded=0)
        assert decision.new is None
        assert decision.rejected is not None
        assert "exceeds" in decision.rejected

    def test_nothing_can_be_refunded_on_an_unpaid_order(self) -> None:
        decision = decide_refund(request(1), Payment("O1", 0, "EUR", "PAY-0"), already_refunded=0)
        assert decision.rejected is not None
        assert decision.new is None

    def test_repeated_partials_add_up_to_the_paid_amount_and_no_further(self) -> None:
        total = 0
        outcomes = []
        for n, amount in enumerate([300, 300, 300, 300, 100, 1]):
            decision = decide_refund(request(amount, f"K{n}"), PAID, already_refunded=total)
            outcomes.append(decision.new is not None)
            if decision.new is not None:
                total = decision.new.total_refunded
        assert outcomes == [True, True, True, False, True, False]
        assert total == 1_000

    @pytest.mark.parametrize("amount", [0, -5])
    def test_a_non_positive_amount_is_rejected(self, amount: int) -> None:
        decision = decide_refund(request(amount), PAID, already_refunded=0)
        assert decision.rejected == f"refund amount must be positive, not {amount}"


class TestCurrency:
    """A refund is made in the currency of the payment."""

    def test_another_currency_is_rejected(self) -> None:
        decision = decide_refund(request(100, currency="USD"), PAID, already_refunded=0)
        assert decision.new is None
        assert decision.rejected == "currency USD differs from the payment's EUR"

    def test_the_same_currency_passes(self) -> None:
        assert decide_refund(request(100, currency="EUR"), PAID, already_refunded=0).new is not None


class TestOneRefundPerKey:
    """A refund key names one refund: a repeat gets it back and nothing new."""

    def test_a_repeat_returns_the_recorded_refund(self) -> None:
        prior = recorded(300, total=300)
        decision = decide_refund(request(300), PAID, already_refunded=300, prior=prior)
        assert decision.repeat == prior
        assert decision.new is None
        assert decision.refund == prior

    def test_a_repeat_is_answered_even_when_the_ledger_has_moved_on(self) -> None:
        prior = recorded(300, total=300)
        decision = decide_refund(request(300), PAID, already_refunded=1_000, prior=prior)
        assert decision.repeat == prior
        assert decision.rejected is None

    def test_a_repeat_wins_over_changed_parameters(self) -> None:
        prior = recorded(300, total=300)
        decision = decide_refund(request(5_000, currency="USD"), PAID, already_refunded=300, prior=prior)
        assert decision.repeat == prior

    def test_a_key_used_for_another_order_is_rejected(self) -> None:
        prior = recorded(300, order_id="O2")
        decision = decide_refund(request(300), PAID, already_refunded=0, prior=prior)
        assert decision.refund is None
        assert decision.rejected == "refund key K1 was used for another order"

    def test_the_refund_id_is_stable_per_key(self) -> None:
        assert refund_id_for("K1") == refund_id_for("K1") != refund_id_for("K2")
        first = decide_refund(request(100, "K7"), PAID, already_refunded=0).new
        again = decide_refund(request(100, "K7"), PAID, already_refunded=500).new
        assert first is not None
        assert again is not None
        assert first.refund_id == again.refund_id == refund_id_for("K7")

    def test_a_payment_of_another_order_is_a_bug(self) -> None:
        with pytest.raises(ValueError, match="payment of O2"):
            decide_refund(request(100), Payment("O2", 1_000, "EUR", "PAY-2"), already_refunded=0)
