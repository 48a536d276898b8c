"""`--engine dask` against a real distributed.LocalCluster with worker processes on loopback."""

from __future__ import annotations

import json
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from qtrace.batch import run_batch
from qtrace.errors import UsageError

LOG = "qemu10-pc-bridges-ts.log"
SIMPLE = "pc-boot.simpletrace"
VOLATILE = ("seconds",)


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2,
        processes=True,
        threads_per_worker=1,
        host="127.0.0.1",
        dashboard_address=None,
        worker_dashboard_address=None,
    ) as cluster:
        yield str(cluster.scheduler_address)


def _records(out: Path) -> list[dict[str, Any]]:
    summary = json.loads((out / "summary.json").read_text())
    return [
        {k: v for k, v in record.items() if k not in VOLATILE} for record in summary["artifacts"]
    ]


@pytest.mark.slow
def test_dask_engine_gives_the_same_outputs_as_the_local_engine(
    scheduler: str, shared_traces: Path, tmp_path: Path
) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "empty.log").write_bytes(b"")
    with tarfile.open(inputs / "ci.tar.gz", "w:gz") as archive:
        archive.add(shared_traces / LOG, "job/" + LOG)
    args = [str(shared_traces / LOG), str(shared_traces / SIMPLE), str(inputs)]
    local = run_batch(args, tmp_path / "local", jobs=1)
    remote = run_batch(args, tmp_path / "dask", engine="dask", scheduler=scheduler)
    assert remote.exit_code == local.exit_code
    assert _records(tmp_path / "dask") == _records(tmp_path / "local")
    assert len(_records(tmp_path / "dask")) == 4
    for name in ("views.parquet", "roots.parquet", "junit.xml", "index.html", "summary.md"):
        assert (tmp_path / "dask" / name).is_file()
    # The dask work area lives under --out while running, and is gone afterwards.
    assert not list((tmp_path / "dask").glob(".qtrace-work-*"))


def test_unreachable_scheduler_is_a_clear_usage_error(
    shared_traces: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("qtrace.batch.engines.DASK_CONNECT_TIMEOUT", "1s")
    with pytest.raises(UsageError, match="cannot reach the Dask scheduler"):
        run_batch(
            [str(shared_traces / LOG)],
            tmp_path / "o",
            engine="dask",
            scheduler="tcp://127.0.0.1:9",
        )
