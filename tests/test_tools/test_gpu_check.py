"""tools/misc/gpu_check.sh rehearsed on the CPU (--quick): every section of the report is written,
every operator agrees with its reference, and bad arguments are refused in one sentence."""
import os
import os.path as osp
import subprocess
import sys

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def run_check(*args):
    env = dict(os.environ, PYTHON=sys.executable)
    return subprocess.run(['bash', 'tools/misc/gpu_check.sh', *args], cwd=REPO_ROOT, env=env, capture_output=True,
                          text=True, timeout=900)


def test_cpu_rehearsal_writes_the_whole_report(tmp_path):
    report = tmp_path / 'report.md'
    result = run_check('--device', 'cpu', '--quick', '--out', str(report))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    text = report.read_text()
    for title in ('# mmconv GPU check', '## Operators against their references (cpu)', '## Operator benchmark (cpu',
                  '## Model benchmark (cpu)'):
        assert title in text, text[-3000:]
    rows = [
        line for line in text.splitlines()
        if line.startswith('| ') and line.endswith(' |') and line.split('|')[-2].strip() in ('ok', 'FAIL')
    ]
    assert len(rows) == 6 and all(row.split('|')[-2].strip() == 'ok' for row in rows), rows
    assert 'SDNet-18 | eager | fp32 | ResNet-18' in text


def test_unknown_argument_and_missing_cuda_are_one_sentence(tmp_path):
    result = run_check('--devices', 'cpu')
    assert result.returncode == 2 and result.stderr.strip().startswith('gpu_check.sh: error: unknown argument')
    import torch
    if not torch.cuda.is_available():
        result = run_check('--out', str(tmp_path / 'r.md'))
        assert result.returncode == 2 and 'no CUDA device' in result.stderr
        assert not (tmp_path / 'r.md').exists()
