"""Progress on a terminal is a tqdm bar; in a log it is plain periodic lines."""

import io

from skull2face.progress import LineProgress, progress


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_lines_every_period_with_count_share_and_time_left():
    out, clock = io.StringIO(), Clock()
    p = LineProgress(range(10), desc="synthetic samples", every_s=30.0, stream=out, clock=clock)
    for _ in p:
        clock.t += 10.0  # three steps per line
    lines = out.getvalue().splitlines()
    assert lines[0] == "synthetic samples: 3/10 (30%) in 30 s, ~70 s left"
    assert lines[1] == "synthetic samples: 6/10 (60%) in 60 s, ~40 s left"
    assert lines[-1] == "synthetic samples: 10/10 (100%) in 100 s"
    assert len(lines) == 4 and "\r" not in out.getvalue()


def test_by_hand_with_initial_steps_and_messages():
    out, clock = io.StringIO(), Clock()
    with LineProgress(total=8, initial=2, desc="epochs", every_s=5.0, stream=out, clock=clock) as p:
        clock.t = 6.0
        p.update(2)
        p.write("epoch 4/8 G 1.0")
    # a line after 5 s, the message, and the closing line (stopped half-way: still the estimate)
    assert out.getvalue().splitlines() == ["epochs: 4/8 (50%) in 6 s, ~12 s left", "epoch 4/8 G 1.0",
                                           "epochs: 4/8 (50%) in 6 s, ~12 s left"]


def test_not_a_terminal_gives_lines_a_terminal_a_bar_disable_silence():
    from tqdm import tqdm

    log = io.StringIO()
    assert isinstance(progress(range(3), desc="x", stream=log, disable=None), LineProgress)
    assert list(progress(range(3), stream=log, leave=False)) == [0, 1, 2]  # inner loops stay quiet in logs

    class Tty(io.StringIO):
        def isatty(self):
            return True

    bar = progress(range(3), desc="x", stream=Tty())
    assert isinstance(bar, tqdm)
    bar.close()
    quiet = progress(range(3), disable=True)
    assert list(quiet) == [0, 1, 2] and not isinstance(quiet, (tqdm, LineProgress))
    items = list(progress(range(4), desc="heads", stream=log))
    assert items == [0, 1, 2, 3] and log.getvalue().splitlines()[-1].startswith("heads: 4/4 (100%)")
