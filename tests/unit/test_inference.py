"""The serving side in process: the seen-items artifact, top-k recommendations, broken model
folders and ``serve``'s reading of SageMaker's environment."""

from __future__ import annotations

import json
import shutil

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import torch

import inference.__main__ as cli
from inference.recommender import (
    InvalidKError,
    Query,
    Recommender,
    UnknownItemError,
    UnknownUserError,
)
from preprocessing.schema import ITEMS, USERS, write_table
from training.artifacts import SEEN_ITEMS, SEEN_ITEMS_FILE, ArtifactError, load_model
from training.models import build_model


def seen_by_user(split) -> dict[int, set[int]]:
    """Raw user id -> raw item ids of its train and validation interactions."""
    user_ids = split.users.set_index("user")["user_id"]
    item_ids = split.items.set_index("item")["item_id"]
    seen: dict[int, set[int]] = {int(user_id): set() for user_id in user_ids}
    for frame in (split.train, split.validation.frame):
        for user, item in zip(frame["user"], frame["item"], strict=True):
            seen[int(user_ids[user])].add(int(item_ids[item]))
    return seen


# --- the artifact -----------------------------------------------------------------------------


def test_seen_items_has_the_declared_schema_and_every_train_and_validation_pair(model_dir, split):
    table = pq.read_table(model_dir / SEEN_ITEMS_FILE)
    assert table.schema.equals(SEEN_ITEMS, check_metadata=False)
    written = set(zip(table["user"].to_pylist(), table["item"].to_pylist(), strict=True))
    frames = (split.train, split.validation.frame)
    expected = {pair for f in frames for pair in zip(f["user"], f["item"], strict=True)}
    assert written == expected
    assert table.num_rows == len(expected)  # one row per distinct pair


# --- the recommender --------------------------------------------------------------------------


def test_every_unseen_item_and_no_seen_one_is_recommended_best_first(recommender, split):
    n_items = recommender.n_items
    for user_id, seen in seen_by_user(split).items():
        ranked = recommender.recommend(user_id, k=n_items)
        items = [item_id for item_id, _ in ranked]
        assert set(items) == set(split.items["item_id"]) - seen
        assert len(items) == len(set(items)) == n_items - len(seen)
        scores = [score for _, score in ranked]
        assert scores == sorted(scores, reverse=True)


def test_scores_are_the_models_logits_for_the_raw_ids(recommender, model_dir, split):
    model, _ = load_model(model_dir)
    user_id = int(split.users["user_id"].iloc[7])
    user = int(split.users.set_index("user_id").loc[user_id, "user"])
    index_of_item = split.items.set_index("item_id")["item"]
    top = recommender.recommend(user_id, k=5)
    assert len(top) == 5
    assert all(type(item_id) is int and type(score) is float for item_id, score in top)
    items = torch.tensor([int(index_of_item[item_id]) for item_id, _ in top])
    with torch.no_grad():
        logits = model(torch.full_like(items, user), items)
    assert [score for _, score in top] == pytest.approx(logits.tolist(), abs=1e-6)


def test_unknown_user_is_named(recommender):
    with pytest.raises(UnknownUserError, match="unknown user_id 987654"):
        recommender.recommend(987654)


@pytest.mark.parametrize("k", [0, -1, 401])
def test_k_outside_the_catalogue_is_refused(recommender, split, k):
    assert recommender.n_items == 400
    with pytest.raises(InvalidKError, match="between 1 and 400"):
        recommender.recommend(int(split.users["user_id"].iloc[0]), k=k)


def test_raw_ids_come_from_the_id_maps_whatever_their_row_order(recommender, model_dir, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(model_dir, folder)
    for name, table_schema, raw in (("users", USERS, "user_id"), ("items", ITEMS, "item_id")):
        path = folder / f"{name}.parquet"
        table = pq.read_table(path)
        relabelled = pc.add(pc.multiply(table[raw], 1000), 7)  # raw id r becomes 1000 r + 7
        table = table.set_column(table.schema.get_field_index(raw), raw, relabelled)
        write_table(table.take(list(range(table.num_rows))[::-1]), table_schema, path)
    expected = [(1000 * item_id + 7, score) for item_id, score in recommender.recommend(5, 4)]
    assert Recommender.from_folder(folder, "cpu").recommend(5007, 4) == expected


def test_a_batch_ranks_each_user_as_alone_and_new_users_by_popularity(recommender, split):
    user_ids = [int(u) for u in split.users["user_id"].iloc[:5]]
    queries = [Query(u, k) for u, k in zip(user_ids, (1, 5, 10, 3, 7), strict=True)]
    rankings = recommender.rank([*queries[:2], Query(987654, 4), *queries[2:]])
    alone = [recommender.recommend(q.user_id, q.k) for q in queries]
    for ranking, expected in zip(rankings[:2] + rankings[3:], alone, strict=True):
        assert [item for item, _ in ranking.items] == [item for item, _ in expected]
        assert [s for _, s in ranking.items] == pytest.approx([s for _, s in expected], abs=1e-6)
    popular = split.items.sort_values(["n_train", "item"], ascending=[False, True])
    assert rankings[2].items == [(i, None) for i in popular["item_id"].head(4)]
    assert rankings[2].fallback == "popularity" and rankings[0].fallback is None


def test_with_the_fallback_off_a_new_user_fails_the_batch_before_scoring(recommender, split):
    known = int(split.users["user_id"].iloc[0])
    with pytest.raises(UnknownUserError, match="unknown user_id 987654"):
        recommender.rank([Query(known), Query(987654, fallback=False)])


def _tied(folder):
    """Every item embedding equal: every unseen item gets the same score."""
    state = torch.load(folder / "model.pt", weights_only=True)
    state["item_embedding.weight"][:] = state["item_embedding.weight"][0]
    torch.save(state, folder / "model.pt")


def test_equal_scores_are_ranked_by_catalogue_index_also_at_the_kth_place(
    model_dir, split, tmp_path
):
    folder = tmp_path / "model"
    shutil.copytree(model_dir, folder)
    _tied(folder)
    user_id = int(split.users["user_id"].iloc[2])
    seen = seen_by_user(split)[user_id]
    by_index = split.items.sort_values("item")["item_id"]
    unseen_in_order = [int(i) for i in by_index if int(i) not in seen]
    tied = Recommender.from_folder(folder, "cpu")
    for k in (1, 7, len(unseen_in_order)):
        assert [item for item, _ in tied.recommend(user_id, k)] == unseen_in_order[:k]


def test_pairs_are_scored_by_the_model_and_unknown_ids_named(recommender, model_dir, split):
    user_id, item_id = int(split.users["user_id"].iloc[1]), int(split.items["item_id"].iloc[4])
    model, _ = load_model(model_dir)
    user = int(split.users.set_index("user_id").loc[user_id, "user"])
    item = int(split.items.set_index("item_id").loc[item_id, "item"])
    with torch.no_grad():
        expected = model(torch.tensor([user]), torch.tensor([item])).item()
    assert recommender.score([(user_id, item_id)]) == [pytest.approx(expected, abs=1e-6)]
    with pytest.raises(UnknownItemError, match="unknown item_id -1"):
        recommender.score([(user_id, -1)])
    with pytest.raises(UnknownUserError):
        recommender.score([(987654, item_id)])


def test_a_bf16_shortlist_ranked_in_fp32_gives_the_exact_answer(model_dir, split, tmp_path):
    """A NeuMF of the model folder's sizes, random weights: the shortlist from the bf16 pass,
    ranked by the model's fp32 scores, is the fp32 ranking, scores included."""
    folder = tmp_path / "model"
    shutil.copytree(model_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    config["architecture"] |= {"model": "neumf", "num_factors": 8, "layers": [32, 16, 8]}
    (folder / "config.json").write_text(json.dumps(config))
    torch.manual_seed(5)
    arch = config["architecture"]
    neumf = build_model("neumf", arch["n_users"], arch["n_items"], 8, (32, 16, 8))
    for parameter in neumf.parameters():
        torch.nn.init.normal_(parameter, std=0.3)
    torch.save(neumf.state_dict(), folder / "model.pt")
    exact = Recommender.from_folder(folder, "cpu", precision="fp32")
    shortlisted = Recommender.from_folder(folder, "cpu", precision="bf16")
    assert shortlisted.precision == "bf16 shortlist, fp32 ranking"
    queries = [
        Query(int(user_id), k)
        for user_id, k in zip(split.users["user_id"], [1, 10, 50] * 400, strict=False)
    ]
    for fp32, bf16 in zip(exact.rank(queries), shortlisted.rank(queries), strict=True):
        assert [item for item, _ in bf16.items] == [item for item, _ in fp32.items]
        assert [s for _, s in bf16.items] == pytest.approx([s for _, s in fp32.items], abs=1e-5)
    with pytest.raises(ValueError, match="precision must be fp32, bf16 or auto"):
        Recommender.from_folder(folder, "cpu", precision="fp16")


def test_an_item_is_its_catalogue_row(recommender, split):
    row = split.items.iloc[9]
    item = recommender.item(int(row["item_id"]))
    assert (item.n_train, item.title) == (int(row["n_train"]), None)
    with pytest.raises(UnknownItemError):
        recommender.item(987654)


def _drop_seen_items(folder):
    (folder / SEEN_ITEMS_FILE).unlink()


def _widen_seen_items(folder):
    table = pq.read_table(folder / SEEN_ITEMS_FILE)
    wide = table.cast(pa.schema([("user", pa.int64()), ("item", pa.int64())]))
    pq.write_table(wide, folder / SEEN_ITEMS_FILE)


def _truncate_users(folder):
    path = folder / "users.parquet"
    pq.write_table(pq.read_table(path).slice(1), path)


def _nan_weights(folder):
    state = torch.load(folder / "model.pt", weights_only=True)
    user_table = next(key for key in state if key.endswith("user_embedding.weight"))
    state[user_table][0, 0] = float("nan")
    torch.save(state, folder / "model.pt")


def _id_map_of_items_only(folder):
    config = json.loads((folder / "config.json").read_text())
    del config["data"]["id_maps"]["users"]
    (folder / "config.json").write_text(json.dumps(config))


def _seen_item_out_of_range(folder):
    wrong = pa.table({"user": [0], "item": [400]}, schema=SEEN_ITEMS)
    pq.write_table(wrong, folder / SEEN_ITEMS_FILE)


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        (_drop_seen_items, "has no seen_items.parquet"),
        (_widen_seen_items, "seen_items.parquet is unreadable or has another schema"),
        (_truncate_users, "user id map does not match the model's 300 users"),
        (_seen_item_out_of_range, "names users or items the model lacks"),
        (_id_map_of_items_only, r"names no user and item id maps \(data\.id_maps\)"),
        (_nan_weights, r"NaN or infinite values in \S*user_embedding\.weight: the run .* diverged"),
    ],
)
def test_a_broken_model_folder_is_an_artifact_error(model_dir, tmp_path, breakage, message):
    folder = tmp_path / "model"
    shutil.copytree(model_dir, folder)
    breakage(folder)
    with pytest.raises(ArtifactError, match=message):
        Recommender.from_folder(folder, "cpu")


# --- python -m inference ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "env", "port", "workers"),
    [
        ([], {}, 8080, 1),
        (
            ["serve"],
            {"SAGEMAKER_BIND_TO_PORT": "9090", "SAGEMAKER_MODEL_SERVER_WORKERS": "3"},
            9090,
            3,
        ),
    ],
)
def test_serve_reads_sagemakers_environment(monkeypatch, tmp_path, argv, env, port, workers):
    for name in ("SAGEMAKER_BIND_TO_PORT", "SAGEMAKER_MODEL_SERVER_WORKERS"):
        monkeypatch.delenv(name, raising=False)
    metrics = tmp_path / "metrics"
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(metrics))
    (metrics / "stale").mkdir(parents=True)  # a restart must not count the last run's requests
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    calls = []
    monkeypatch.setattr(cli.uvicorn, "run", lambda app, **kwargs: calls.append((app, kwargs)))
    cli.main(argv)
    [(app, kwargs)] = calls
    assert app == "inference.app:app"
    assert (kwargs["host"], kwargs["port"], kwargs["workers"]) == ("0.0.0.0", port, workers)
    assert metrics.is_dir() and not any(metrics.iterdir())


@pytest.mark.parametrize(
    ("argv", "env"),
    [
        (["train"], {}),
        ([], {"SAGEMAKER_MODEL_SERVER_WORKERS": "zero"}),
        ([], {"SAGEMAKER_BIND_TO_PORT": "8²"}),
    ],
)
def test_serve_refuses_what_it_cannot_run(monkeypatch, argv, env, capsys):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(cli.uvicorn, "run", lambda *args, **kwargs: pytest.fail("started"))
    with pytest.raises(SystemExit):
        cli.main(argv)
    assert ("invalid choice" if argv else "must be a positive integer") in capsys.readouterr().err
