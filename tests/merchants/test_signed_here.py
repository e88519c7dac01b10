import threading

import pytest

from rollon.merchants.signed_here import SignedHere


def test_a_remembered_text_is_handed_out_once() -> None:
    signed = SignedHere[int](max_entries=4)
    signed.remember("payload A", 1)
    assert signed.take("payload B") is None
    assert signed.take("payload A") == 1
    assert signed.take("payload A") is None  # a second payment goes the full way
    assert len(signed) == 0


def test_only_the_exact_text_matches() -> None:
    signed = SignedHere[int](max_entries=4)
    signed.remember("000201010212", 1)
    for near in ("000201010213", "00020101021", "000201010212 ", ""):
        assert signed.take(near) is None
    assert signed.take("000201010212") == 1


def test_it_is_bounded_and_forgets_the_oldest_first() -> None:
    signed = SignedHere[int](max_entries=3)
    for n in range(5):
        signed.remember(f"payload {n}", n)
    assert len(signed) == 3
    assert signed.take("payload 0") is None and signed.take("payload 1") is None
    assert [signed.take(f"payload {n}") for n in (2, 3, 4)] == [2, 3, 4]


def test_a_bound_must_hold_something() -> None:
    with pytest.raises(AssertionError):
        SignedHere[int](max_entries=0)


def test_threads_never_get_one_entry_twice() -> None:
    signed = SignedHere[int](max_entries=10_000)
    for n in range(2_000):
        signed.remember(f"payload {n}", n)
    taken: list[list[int]] = [[] for _ in range(4)]

    def take_all(mine: list[int]) -> None:
        for n in range(2_000):
            value = signed.take(f"payload {n}")
            if value is not None:
                mine.append(value)

    threads = [threading.Thread(target=take_all, args=(mine,)) for mine in taken]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    everything = sorted(value for mine in taken for value in mine)
    assert everything == list(range(2_000))
