"""``python -m preprocessing`` offline: the download failure says how to use local files."""

import preprocessing.__main__ as cli


def test_offline_download_says_how_to_use_local_files(tmp_path, capsys, monkeypatch):
    import dataclasses

    from preprocessing import datasets

    spec = dataclasses.replace(datasets.DATASETS["ml-1m"], url="http://127.0.0.1:9/ml-1m.zip")
    monkeypatch.setitem(datasets.DATASETS, "ml-1m", spec)
    argv = ["--dataset", "ml-1m", "--cache-dir", str(tmp_path), "--output-dir", str(tmp_path / "o")]
    assert cli.main(argv) == 1
    assert "--data-dir" in capsys.readouterr().err
