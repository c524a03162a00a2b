"""Checkpoints that are not ours are refused in one line naming the file, and nothing in them ever runs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from corpus.errors import InputError
from corpus.tokenizer import train_tokenizer
from training.checkpoint import MARKER, STATE_FILE, load_checkpoint
from webtext.cli import main


class Payload:
    """What a hostile checkpoint would smuggle in: unpickling it calls Path.touch(marker)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return Path.touch, (self.marker,)


def hostile_checkpoint(root: Path) -> tuple[Path, Path]:
    """(checkpoint directory, the file its payload would create): a complete checkpoint whose state holds
    a pickled call beside real tensors."""
    directory = root / "run" / "checkpoints" / "step-00000002"
    directory.mkdir(parents=True)
    marker = root / "payload-ran"
    torch.save({"model": {"w": torch.zeros(2)}, "extra": Payload(marker)}, directory / STATE_FILE)
    (directory / MARKER).write_text("ok\n")
    train_tokenizer(["a b c"], 300).save(str(root / "run" / "tokenizer.json"))  # what finetune loads first
    return directory, marker


def test_a_pickled_call_is_refused_in_one_line_without_running_it(tmp_path):
    directory, marker = hostile_checkpoint(tmp_path)
    with pytest.raises(InputError) as refused:
        load_checkpoint(directory)
    message = str(refused.value)
    assert message.startswith(f"{directory / STATE_FILE}: refused: it holds a Python object (")
    assert "\n" not in message and "weights_only" not in message and "trust" not in message
    assert not marker.exists()


def test_a_truncated_checkpoint_is_one_line(tmp_path):
    directory, _ = hostile_checkpoint(tmp_path)
    state = directory / STATE_FILE
    state.write_bytes(state.read_bytes()[:100])
    with pytest.raises(InputError, match=rf"^{state}: unreadable checkpoint \(") as refused:
        load_checkpoint(directory)
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize(
    "command",
    [
        ["export", "--out", "{tmp}/hf"],
        ["eval", "--task", "ptb={tmp}/ptb.txt"],
        ["finetune", "--task", "classification", "--dev", "{tmp}/dev.tsv", "--out", "{tmp}/ft"],
    ],
)
def test_commands_taking_a_checkpoint_refuse_it_in_one_line(tmp_path, capsys, command):
    directory, marker = hostile_checkpoint(tmp_path)
    (tmp_path / "ptb.txt").write_text("a b c\n")
    rows = "".join(f"sentence {i}\t{i % 2}\n" for i in range(40))
    (tmp_path / "dev.tsv").write_text(f"sentence\tlabel\n{rows}")
    argv = [command[0], "--checkpoint", str(directory), *(a.format(tmp=tmp_path) for a in command[1:])]
    assert main(argv) == 2
    err = capsys.readouterr().err
    *_, last = err.strip().splitlines()
    assert last.startswith(f"webtext {command[0]}: error: {directory / STATE_FILE}: refused: ")
    assert "Traceback" not in err and "weights_only" not in err
    assert not marker.exists()
