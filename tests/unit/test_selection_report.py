"""The selection benchmark's report: mean and spread per option, the unpooled model at every
compression."""
from benchmarks.selection.report import aggregate, format_table, run_key


def _row(option, seed, compression, recall):
    return dict(task="spans", length=512, compression=compression, option=option, seed=seed,
                recall=recall, token_accuracy=0.5, rouge1=50.0, rouge2=10.0, rougeL=40.0,
                train_seconds=100.0, generate_seconds=5.0)


def test_unpooled_runs_stand_at_every_compression_once_per_seed():
    rows = [_row("avg", 1, 8, 0.1), _row("avg", 2, 8, 0.3), _row("avg", 1, 16, 0.2),
            # seed 1 of the unpooled model written twice (once per compression, the old rule)
            _row("none", 1, 16, 0.4), _row("none", 1, 8, 0.9), _row("none", 2, 1, 0.2)]
    summary = aggregate(rows)
    assert set(summary) == {("spans", 512, 8, "avg"), ("spans", 512, 16, "avg"),
                            ("spans", 512, 8, "none"), ("spans", 512, 16, "none")}
    for compression in (8, 16):
        stats = summary[("spans", 512, compression, "none")]
        assert stats["seeds"] == 2
        assert abs(stats["recall"][0] - 0.3) < 1e-9      # seeds 1 (first row kept) and 2
    assert abs(summary[("spans", 512, 8, "avg")]["recall"][0] - 0.2) < 1e-9
    table = format_table(summary)
    assert table.index("8x compression") < table.index("16x compression")
    assert table.count("| none |") == 2


def test_unpooled_alone_has_its_own_table():
    table = format_table(aggregate([_row("none", 1, 1, 0.5)]))
    assert "unpooled only" in table and "| none |" in table


def test_the_unpooled_run_is_one_job_whatever_the_compression():
    assert run_key("spans", 512, 8, "none", 1) == run_key("spans", 512, 64, "none", 1)
    assert run_key("spans", 512, 8, "avg", 1) != run_key("spans", 512, 64, "avg", 1)
