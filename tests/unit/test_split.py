"""The NCF leave-one-out protocol: latest held out, ties to the larger item, unseen negatives."""

import numpy as np
import pandas as pd
import pytest

from preprocessing.split import from_benchmark, leave_one_out, sample_unseen


def frame(rows):
    return pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"]).astype(
        {"user_id": "int64", "item_id": "int64", "rating": "float32", "timestamp": "int64"}
    )


def test_latest_is_test_and_ties_go_to_the_larger_item():
    raw = frame(
        [(10, 11, 5, 100), (10, 12, 4, 300), (10, 13, 3, 300), (10, 14, 2, 200)]
        + [(20, i, 3, i) for i in range(1, 8)]
    )
    split = leave_one_out(raw, num_negatives=2, validation=True, seed=0)
    test = split.test.frame.merge(split.users, on="user").merge(split.items, on="item")
    assert dict(zip(test.user_id, test.item_id, strict=True)) == {10: 13, 20: 7}
    val = split.validation.frame.merge(split.users, on="user").merge(split.items, on="item")
    assert dict(zip(val.user_id, val.item_id, strict=True)) == {10: 12, 20: 6}
    assert len(split.train) == len(raw) - 4


def test_negatives_are_distinct_and_never_seen(small_interactions):
    split = leave_one_out(small_interactions, num_negatives=99, seed=3)
    seen = set(
        zip(
            *[
                np.concatenate(parts)
                for parts in zip(
                    *[
                        (h.frame.user.to_numpy(), h.frame.item.to_numpy())
                        for h in (split.test, split.validation)
                    ],
                    strict=True,
                )
            ],
            strict=True,
        )
    )
    seen |= set(zip(split.train.user, split.train.item, strict=True))
    for holdout in (split.test, split.validation):
        assert holdout.negatives.shape == (split.n_users, 99)
        for user, row in zip(holdout.frame.user, holdout.negatives, strict=True):
            assert len(set(row.tolist())) == 99
            assert not any((user, item) in seen for item in row)


def test_seed_fixes_the_negatives(small_interactions):
    a = leave_one_out(small_interactions, seed=5).test.negatives
    b = leave_one_out(small_interactions, seed=5).test.negatives
    c = leave_one_out(small_interactions, seed=6).test.negatives
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_features_come_from_train_only(small_interactions):
    split = leave_one_out(small_interactions, seed=0)
    assert split.users.n_train.sum() == len(split.train)
    assert split.items.n_train.sum() == len(split.train)
    first_user = split.train[split.train.user == 0]
    assert split.users.loc[0, "last_timestamp"] == first_user.timestamp.max()


def test_users_with_too_short_histories_are_named():
    raw = frame([(1, 1, 3, 1), (1, 2, 3, 2), (2, 1, 3, 1), (2, 2, 3, 2), (2, 3, 3, 3)])
    with pytest.raises(ValueError, match=r"user_id 1"):
        leave_one_out(raw, num_negatives=1, validation=True)


def test_too_few_unseen_items_for_the_negatives():
    raw = frame([(1, i, 3, i) for i in range(1, 6)])
    with pytest.raises(ValueError, match="too few to sample 99"):
        leave_one_out(raw, num_negatives=99, validation=False)


def test_sample_unseen_redraws_collisions():
    seen = np.array([0 * 10 + i for i in range(8)])  # user 0 has seen items 0..7 of 10
    draws = sample_unseen(np.zeros(50, dtype=np.int64), seen, 10, 2, np.random.default_rng(0))
    assert set(draws.flatten().tolist()) == {8, 9}
    assert (draws[:, 0] != draws[:, 1]).all()


def test_benchmark_split_keeps_the_published_test():
    train = frame([(u, i, 4, i) for u in range(3) for i in range(5)])
    test = frame([(u, 5 + u, 4, 99) for u in (2, 0, 1)])
    negatives = np.array([[9, 10], [7, 10], [8, 9]])
    split = from_benchmark(train, test, negatives, validation=False)
    assert split.test.frame.user.tolist() == [0, 1, 2]
    assert split.test.frame.item.tolist() == [5, 6, 7]
    assert split.test.negatives.tolist() == [[7, 10], [8, 9], [9, 10]]
    assert split.n_items == 11


def test_benchmark_validation_holds_out_one_of_two_training_ratings():
    train = frame([(u, i, 4, i) for u in range(2) for i in (1, 2)])
    test = frame([(0, 5, 4, 99), (1, 6, 4, 99)])
    split = from_benchmark(train, test, np.array([[7, 8], [7, 8]]), validation=True, seed=0)
    assert split.validation.frame.item.tolist() == [2, 2]
    assert split.train.item.tolist() == [1, 1]
    assert split.validation.negatives.shape == (2, 2)


def test_benchmark_validation_names_users_with_a_single_training_rating():
    train = frame([(0, 1, 4, 1), (0, 2, 4, 2), (1, 1, 4, 1)])
    test = frame([(0, 5, 4, 99), (1, 6, 4, 99)])
    with pytest.raises(ValueError, match=r"1 users \(e\.g\. user_id 1\) have a single training"):
        from_benchmark(train, test, np.array([[7, 8], [7, 8]]), validation=True)


@pytest.mark.parametrize("validation", [False, True])
@pytest.mark.parametrize(
    "test_users", [(0, 1, 2), (0, 2)], ids=["user-only-in-test", "gap-in-the-ids"]
)
def test_benchmark_names_users_without_training_ratings(validation, test_users):
    train = frame([(u, i, 4, i) for u in (0, 2) for i in (1, 2)])
    test = frame([(u, 5, 4, 99) for u in test_users])
    negatives = np.full((len(test_users), 2), 7)
    with pytest.raises(ValueError, match=r"1 users \(e\.g\. user_id 1\) have no training ratings"):
        from_benchmark(train, test, negatives, validation=validation)
