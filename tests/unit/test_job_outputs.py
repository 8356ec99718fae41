"""A job's model.tar.gz brought back from the store as a model folder."""

from __future__ import annotations

import json

from orchestration.infra.containers import package_model
from orchestration.lessons import job_outputs


def test_fetch_unpacks_the_archive_and_reads_its_metrics(tmp_path, monkeypatch):
    model = tmp_path / "job" / "model"
    model.mkdir(parents=True)
    (model / "metrics.json").write_text(json.dumps({"val_hr@10": 0.5}))
    archive = package_model(model, tmp_path / "store" / "model.tar.gz")
    asked = []

    def download(session, uri, target):
        asked.append(uri)
        target.mkdir(parents=True)
        (target / "model.tar.gz").write_bytes(archive.read_bytes())
        return target

    monkeypatch.setattr(job_outputs, "download", download)
    folder = job_outputs.fetch_model(None, "s3://b/m/output/model.tar.gz", tmp_path / "here")
    assert asked == ["s3://b/m/output/model.tar.gz"]
    assert folder == tmp_path / "here" / "model"
    assert job_outputs.read_metrics(folder) == {"val_hr@10": 0.5}
