"""tools/analysis_tools/benchmark_models.py on one tiny pair: ratios, table and chart."""
import math

from analysis_tool_helpers import load_tool


def test_ratios_table_and_chart(tmp_path):
    tool = load_tool('benchmark_models')
    results = tool.main([
        '--models', 'SDNet-18', '--modes', 'eager', 'reference', '--batch', '2', '--size', '32', '--repeat', '1',
        '--device', 'cpu', '--out-dir',
        str(tmp_path)
    ])
    by_key = {(r.model, r.mode): r for r in results}
    assert set(by_key) == {('ResNet-18', 'eager'), ('SDNet-18', 'eager'), ('SDNet-18 fast', 'reference'),
                           ('SDNet-18', 'reference')}
    for mode, baseline in (('eager', 'ResNet-18'), ('reference', 'SDNet-18 fast')):
        model, base = by_key['SDNet-18', mode], by_key[baseline, mode]
        assert math.isclose(model.ratio_time, model.seconds / base.seconds)
        assert math.isclose(model.ratio_memory['saved'], model.memory['saved'] / base.memory['saved'])
    # SDNet-18 is ResNet-18 with a CSC stem: it saves more for backward than ResNet-18's conv stem.
    assert by_key['SDNet-18', 'eager'].ratio_memory['saved'] > 1
    table = (tmp_path / 'benchmark_models.md').read_text()
    assert table.count('| SDNet-18 |') == 2
    assert (tmp_path / 'benchmark_models.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
