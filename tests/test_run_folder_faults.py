"""Faults injected into a run folder: nothing trained is lost, nothing silently restarts, messages name the file."""

import functools
import os
import pathlib
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import sonnet as snt
import tensorflow as tf
from helpers import fit_kwargs

import tfpvi
from tfpvi import files, train
from tfpvi.train import run_folder

ELBO_TERMS = functools.partial(tfpvi.objectives.elbo, return_terms=True)


def small_model():
  return tfpvi.VAE(
    tfpvi.encoders.GaussianMLP([16], 2), tfpvi.decoders.BernoulliMLP([16], [4, 4, 1]), tfpvi.standard_normal_prior(2)
  )


def data(n=64):
  return (np.random.default_rng(0).random([n, 4, 4, 1]) > 0.5).astype("float32")


def fit(folder, steps, model=None, **kwargs):
  defaults = dict(
    batch_size=16,
    checkpoints=train.Checkpoints(every=4),
    logging=train.Logging(every=2, progress=False),
    seed=3,
  )
  kwargs = fit_kwargs(defaults, kwargs)
  return train.fit(
    model or small_model(),
    ELBO_TERMS,
    data(),
    optimizer=snt.optimizers.Adam(1e-2),
    steps=steps,
    output_dir=str(folder),
    **kwargs,
  )


def test_two_fresh_runs_with_one_seed_are_the_same_run(tmp_path):
  first, second = fit(tmp_path / "a", 8), fit(tmp_path / "b", 8)
  pd.testing.assert_frame_equal(first.drop(columns="wall_time"), second.drop(columns="wall_time"))
  a, b = (tf.train.load_checkpoint(str(tmp_path / name / "checkpoints" / "ckpt-8")) for name in "ab")
  for key in a.get_variable_to_shape_map():
    if key.startswith("model/"):
      np.testing.assert_array_equal(a.get_tensor(key), b.get_tensor(key), err_msg=key)
  other = fit(tmp_path / "c", 8, seed=4)
  assert not np.allclose(other["loss"], first["loss"])
  with pytest.raises(ValueError, match=r"seed must be an int in \[0, 2\*\*62\), got 'abc'"):
    fit(tmp_path / "d", 2, seed="abc")


@pytest.mark.parametrize("fault", ["deleted", "garbage"])
def test_a_lost_checkpoint_state_file_resumes_from_the_checkpoints_on_disk(tmp_path, capfd, fault):
  fit(tmp_path, 8)
  state = tmp_path / "checkpoints" / "checkpoint"
  if fault == "deleted":
    state.unlink()
  else:
    state.write_bytes(b"\xff\xfe\x00garbage")
  history = fit(tmp_path, 12)
  err = capfd.readouterr().err
  assert f"{state} is {'missing' if fault == 'deleted' else 'unreadable'}" in err and "resumes from ckpt-8" in err
  assert history["step"].tolist() == [2, 4, 6, 8, 10, 12]  # continued from step 8: nothing redone, nothing lost
  uninterrupted = fit(tmp_path / "twin", 12)
  pd.testing.assert_frame_equal(history.drop(columns="wall_time"), uninterrupted.drop(columns="wall_time"))


def test_an_empty_history_from_a_stop_before_the_first_row_resumes(tmp_path):
  fit(tmp_path, 4, logging=tfpvi.train.Logging(every=100))  # checkpointed at step 4, no row logged yet
  (tmp_path / "history.csv").write_text("\n")  # what a run stopped before its first row leaves
  history = fit(tmp_path, 8, logging=tfpvi.train.Logging(every=100))
  assert history["step"].tolist() == [8]


def test_a_deleted_or_cut_history_is_said_and_a_garbled_one_refused(tmp_path, capfd):
  fit(tmp_path, 8)
  path = tmp_path / "history.csv"
  text = path.read_text()
  path.write_text(text[: text.rindex("\n", 0, len(text) - 1) + 9])  # the last row cut after 8 characters
  history = fit(tmp_path, 10)
  assert "ended in a cut row" in capfd.readouterr().err
  assert history["step"].tolist() == [2, 4, 6, 10]
  path.unlink()
  history = fit(tmp_path, 12)
  assert f"{path} is missing: the history before step 10 is lost" in capfd.readouterr().err
  assert history["step"].tolist() == [12]
  path.write_bytes(b'\x00\x01 not, a\n"history')
  with pytest.raises(ValueError, match=f"{path} is not .*move it away"):
    fit(tmp_path, 14)


def test_a_deleted_record_refuses_an_unchecked_resume(tmp_path):
  fit(tmp_path, 4)
  (tmp_path / "run.json").unlink()
  with pytest.raises(ValueError, match=r"holds checkpoints \(step 4\) but no run.json.*resume='force'"):
    fit(tmp_path, 8, model=small_model())
  history = fit(tmp_path, 8, checkpoints=tfpvi.train.Checkpoints(resume="force"))
  assert history["step"].iloc[-1] == 8 and (tmp_path / "run.json").exists()
  (tmp_path / "run.json").write_text('{"settings": {"objective": "tfpvi.obj')  # cut mid-write
  with pytest.raises(ValueError, match=r"run.json is not readable JSON .*restore it from a copy"):
    fit(tmp_path, 10)


def test_kills_at_random_moments_leave_no_temporary_files_and_lose_nothing(tmp_path):
  script = f"""
import functools, numpy as np, sonnet as snt, tfpvi
model = tfpvi.VAE(tfpvi.encoders.GaussianMLP([16], 2), tfpvi.decoders.BernoulliMLP([16], [4, 4, 1]),
                  tfpvi.standard_normal_prior(2))
x = (np.random.default_rng(0).random([64, 4, 4, 1]) > 0.5).astype("float32")
tfpvi.train.fit(model, functools.partial(tfpvi.objectives.elbo, return_terms=True), x,
                optimizer=snt.optimizers.Adam(1e-2), steps=100000, batch_size=16, seed=3,
                output_dir={str(tmp_path)!r}, checkpoints=tfpvi.train.Checkpoints(every=4),
                logging=tfpvi.train.Logging(every=2, progress=False))
"""

  def latest_step():
    latest = tf.train.latest_checkpoint(str(tmp_path / "checkpoints"))
    return int(latest.rsplit("-", 1)[1]) if latest else 0

  reached = []
  for extra in (0.0, 0.13, 0.37):  # killed at moments after its first new checkpoint, not at fixed times
    before = latest_step()
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240  # a loaded machine takes long to import and compile
    while latest_step() <= before and process.poll() is None and time.time() < deadline:
      time.sleep(0.02)
    time.sleep(extra)
    process.kill()
    process.wait()
    reached.append(latest_step())
  assert reached == sorted(reached) and reached[-1] > 0, reached  # every start resumed, none started over
  steps = reached[-1] + 4
  history = fit(tmp_path, steps)
  assert not [p.name for p in tmp_path.rglob("*") if ".tmp" in p.name]
  assert history["step"].tolist() == list(range(2, steps + 1, 2))  # every logged step once, in order


@pytest.mark.parametrize("signum", ["SIGINT", "SIGTERM"])
def test_ctrl_c_and_sigterm_save_a_final_checkpoint_and_exit_with_the_signal(tmp_path, signum):
  import signal

  script = f"""
import functools, numpy as np, sonnet as snt, tfpvi
model = tfpvi.VAE(tfpvi.encoders.GaussianMLP([16], 2), tfpvi.decoders.BernoulliMLP([16], [4, 4, 1]),
                  tfpvi.standard_normal_prior(2))
x = (np.random.default_rng(0).random([64, 4, 4, 1]) > 0.5).astype("float32")
tfpvi.train.fit(model, functools.partial(tfpvi.objectives.elbo, return_terms=True), x,
                optimizer=snt.optimizers.Adam(1e-2), steps=10**7, batch_size=16,
                checkpoints=tfpvi.train.Checkpoints(seconds=3600),
                logging=tfpvi.train.Logging(every=2, progress=False), seed=3, output_dir={str(tmp_path)!r},
                evaluation=tfpvi.train.Evaluation(every=20, metrics=lambda model: print("step", flush=True) or {{}}))
"""
  process = subprocess.Popen(
    [sys.executable, "-c", script],
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
    # Ctrl-C as a terminal delivers it: a test run started in the background (`cmd &` without job
    # control) passes SIGINT on ignored, and Python then never sees it.
    preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
  )
  # Training (not importing or compiling) when the signal comes: after the 3rd evaluation (step 60),
  # however long a loaded machine takes to get there; no checkpoint is due for an hour.
  for _ in range(3):
    assert process.stdout.readline() == "step\n"
  process.send_signal(getattr(signal, signum))
  _, err = process.communicate(timeout=120)
  assert process.returncode in ((-signal.SIGTERM,) if signum == "SIGTERM" else (-signal.SIGINT, 1, 130)), err[-2000:]
  words = "SIGTERM" if signum == "SIGTERM" else "Ctrl-C (SIGINT)"
  assert f"training stopped by {words} at step" in err, err[-2000:]
  assert "run the same call (or command) again to resume" in err, err[-2000:]
  latest = tf.train.latest_checkpoint(str(tmp_path / "checkpoints"))
  reached = int(latest.rsplit("-", 1)[1])
  assert reached >= 60, reached  # the work since the start is kept, though no checkpoint was due
  history = pd.read_csv(tmp_path / "history.csv")
  assert history["step"].iloc[-1] <= reached and history["step"].iloc[-1] >= reached - 2
  resumed = fit(tmp_path, reached + 4)
  logged = resumed["step"].tolist()
  assert logged == sorted(set(logged)) and logged[-1] == reached + 4  # no row twice, none out of order


LONG_RUN = """
import functools, sys, numpy as np, sonnet as snt, tfpvi
model = tfpvi.VAE(tfpvi.encoders.GaussianMLP([16], 2), tfpvi.decoders.BernoulliMLP([16], [4, 4, 1]),
                  tfpvi.standard_normal_prior(2))
x = (np.random.default_rng(0).random([64, 4, 4, 1]) > 0.5).astype("float32")
tfpvi.train.fit(model, functools.partial(tfpvi.objectives.elbo, return_terms=True), x,
                optimizer=snt.optimizers.Adam(1e-2), steps=10**7, batch_size=16, seed=3,
                output_dir=sys.argv[1], checkpoints=tfpvi.train.Checkpoints(every=4, max_to_keep=1),
                logging=tfpvi.train.Logging(every=2, progress=False))
"""


def _start_training(folder):
  """A training process writing checkpoints into folder every 4 steps; returns it once its first one is there."""
  process = subprocess.Popen(
    [sys.executable, "-c", LONG_RUN, str(folder)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
  )
  deadline = time.time() + 240  # a loaded machine takes long to import and compile
  while tf.train.latest_checkpoint(str(folder / "checkpoints")) is None and time.time() < deadline:
    assert process.poll() is None, process.stderr.read()[-2000:]
    time.sleep(0.05)
  return process


def test_a_second_writer_is_refused_naming_the_first_and_the_lock_dies_with_it(tmp_path):
  process = _start_training(tmp_path)
  try:
    with pytest.raises(
      ValueError,
      match=rf"{tmp_path} is being trained by pid {process.pid} on .*since .*two "
      r"writers would mix their checkpoints and history",
    ):
      fit(tmp_path, 8)
  finally:
    process.kill()  # kill -9: the operating system releases the lock
    process.wait()
  reached = int(tf.train.latest_checkpoint(str(tmp_path / "checkpoints")).rsplit("-", 1)[1])
  history = fit(tmp_path, reached + 4)  # the next writer gets the folder and resumes
  assert history["step"].iloc[-1] == reached + 4
  fit(tmp_path, reached + 8)  # and a finished fit releases it too


def test_evaluate_during_training_pins_a_checkpoint_that_is_not_deleted_under_it(tmp_path):
  """Training keeps one checkpoint and replaces it every 4 steps; evaluations read it meanwhile."""
  tfpvi.run_record.update(tmp_path, data={"name": "mnist", "format": "binary"})
  process = _start_training(tmp_path)
  try:
    from tfpvi.cli import evaluate

    for _ in range(4):
      model, _, checkpoint = evaluate.restore_pinned(tmp_path)
      assert model.log_weights(tf.zeros([2, 4, 4, 1]), 2).shape == [2, 2]
      assert checkpoint.rsplit("-", 1)[1].isdigit()
  finally:
    process.kill()
    process.wait()


def test_a_pinned_checkpoint_stays_readable_when_training_deletes_it(tmp_path):
  """The fault the pin guards against, injected: the checkpoint's files are deleted after it is pinned."""
  fit(tmp_path, 4, checkpoints=tfpvi.train.Checkpoints(max_to_keep=1))
  trained = tfpvi.models.specs.load_model(tmp_path)
  prefix = tf.train.latest_checkpoint(str(tmp_path / "checkpoints"))
  with files.pinned_checkpoint(prefix) as pinned:
    assert [path for _, path in run_folder.checkpoints_on_disk(tmp_path)] == [prefix]  # the pin is not one
    for path in (tmp_path / "checkpoints").glob("ckpt-4.*"):
      path.unlink()  # as CheckpointManager does when it keeps only the latest
    model = tfpvi.models.specs.load_model(tmp_path, checkpoint=pinned)
  for restored, saved in zip(model.trainable_variables, trained.trainable_variables):
    np.testing.assert_array_equal(restored.numpy(), saved.numpy())  # whole, though its originals were gone
  assert sorted(path.name for path in (tmp_path / "checkpoints").iterdir()) == ["checkpoint"]  # pin removed
  with pytest.raises(FileNotFoundError):
    with files.pinned_checkpoint(prefix):  # nothing left to pin: the caller's retry finds the next one
      pass


PINNED_READER = """
import sys, time
from tfpvi import files
with files.pinned_checkpoint(sys.argv[1]):
  print("pinned", flush=True)
  time.sleep(600)
"""


def test_a_pin_left_by_a_killed_reader_is_removed_by_a_later_pin_once_stale(tmp_path):
  """kill -9 inside the pinned block leaves the pin; the next pin removes it when it is old, not before."""
  fit(tmp_path, 4, checkpoints=tfpvi.train.Checkpoints(max_to_keep=1))
  prefix = tf.train.latest_checkpoint(str(tmp_path / "checkpoints"))
  reader = subprocess.Popen([sys.executable, "-c", PINNED_READER, prefix], stdout=subprocess.PIPE, text=True)
  assert reader.stdout.readline().strip() == "pinned"
  reader.kill()  # kill -9: its finally never runs
  reader.wait()
  (left,) = (tmp_path / "checkpoints").glob(".pinned-*")
  with files.pinned_checkpoint(prefix):
    assert left.is_dir()  # an hour has not passed: it may still be another reader's
  assert left.is_dir()
  old = time.time() - files.STALE_PIN_SECONDS - 60
  os.utime(left, (old, old))
  with files.pinned_checkpoint(prefix) as pinned:
    assert not left.exists() and pathlib.Path(pinned + ".index").is_file()
  assert sorted(path.name for path in (tmp_path / "checkpoints").iterdir()) == [
    "checkpoint",
    "ckpt-4.data-00000-of-00001",
    "ckpt-4.index",
  ]


def test_a_state_file_naming_a_checkpoint_whose_index_is_gone_resumes_from_the_one_on_disk(tmp_path, capfd):
  fit(tmp_path, 8, checkpoints=tfpvi.train.Checkpoints(max_to_keep=3))
  (tmp_path / "checkpoints" / "ckpt-8.index").unlink()
  history = fit(tmp_path, 12, checkpoints=tfpvi.train.Checkpoints(max_to_keep=3))
  err = capfd.readouterr().err
  assert "names ckpt-8, whose index file is gone" in err and "resumes from ckpt-4" in err
  assert history["step"].tolist() == [2, 4, 6, 8, 10, 12]  # the rows after ckpt-4 are trained again, once


def test_a_cut_checkpoint_says_so_and_names_the_previous_one(tmp_path):
  fit(tmp_path, 8, checkpoints=tfpvi.train.Checkpoints(max_to_keep=3))
  data_file = next((tmp_path / "checkpoints").glob("ckpt-8.data-*"))
  data_file.write_bytes(data_file.read_bytes()[: data_file.stat().st_size // 2])  # cut, as by a full disk
  with pytest.raises(
    ValueError,
    match=r"ckpt-8 cannot be read .*cut or damaged.*The previous checkpoint ckpt-4 "
    r"\(step 4\) is on disk: move ckpt-8.index and ckpt-8.data-\* out of",
  ):
    fit(tmp_path, 12, checkpoints=tfpvi.train.Checkpoints(max_to_keep=3))
  for path in (tmp_path / "checkpoints").glob("ckpt-8.*"):  # what the message says to do
    path.rename(tmp_path / path.name)
  history = fit(tmp_path, 12, checkpoints=tfpvi.train.Checkpoints(max_to_keep=3))
  assert history["step"].tolist() == [2, 4, 6, 8, 10, 12]


def _tensorboard_loss_steps(folder) -> list:
  """The steps of every "loss" point in folder/tensorboard, sorted (a step twice appears twice)."""
  from tensorboard.backend.event_processing import event_accumulator

  steps = []
  for events in (folder / "tensorboard").glob("events.out.tfevents.*"):
    accumulator = event_accumulator.EventAccumulator(str(events), size_guidance={"tensors": 0})
    accumulator.Reload()
    if "loss" in accumulator.Tags()["tensors"]:  # a file cut before its first point holds none
      steps += [event.step for event in accumulator.Tensors("loss")]
  return sorted(steps)


def test_tensorboard_gets_each_step_once_across_a_kill_and_a_resume(tmp_path):
  process = _start_training(tmp_path)
  time.sleep(1.0)
  process.kill()
  process.wait()
  reached = int(tf.train.latest_checkpoint(str(tmp_path / "checkpoints")).rsplit("-", 1)[1])
  fit(tmp_path, reached + 8, checkpoints=tfpvi.train.Checkpoints(max_to_keep=1))
  steps = _tensorboard_loss_steps(tmp_path)
  assert steps == list(range(2, reached + 9, 2))  # every logged step once, none twice


def test_rows_a_kill_kept_out_of_tensorboard_are_written_on_resume(tmp_path):
  """A kill after a checkpoint and before its TensorBoard events: the resume writes them from history.csv."""
  fit(tmp_path, 8)
  events = sorted((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
  events[-1].write_bytes(events[-1].read_bytes()[:200])  # the events after the first few are lost
  fit(tmp_path, 12)
  steps = _tensorboard_loss_steps(tmp_path)
  assert steps == [2, 4, 6, 8, 10, 12], steps


def test_numbers_out_of_range_are_refused_in_one_sentence():
  model = small_model()
  with pytest.raises(ValueError, match=r"num_samples must be at most 2\*\*31 - 1 = 2147483647 .* got 10000000000000"):
    tfpvi.evaluation.log_marginal_likelihood(model, tf.zeros([2, 4, 4, 1]), 10**13)


def test_evaluate_says_which_checkpoint_it_takes_when_the_latest_index_is_gone(tmp_path, capsys):
  from tfpvi.cli import evaluate

  fit(tmp_path, 8, checkpoints=tfpvi.train.Checkpoints(max_to_keep=3))
  tfpvi.run_record.update(tmp_path, data={"name": "mnist", "format": "binary"})
  (tmp_path / "checkpoints" / "ckpt-8.index").unlink()
  _, _, checkpoint = evaluate.restore_pinned(tmp_path)
  assert checkpoint.endswith("ckpt-4")
  assert "names ckpt-8, whose index file is gone; evaluating ckpt-4, the latest checkpoint on disk" in (
    capsys.readouterr().err
  )


WRITE_FAULT_RUN = """
import functools, resource, signal, sys, numpy as np, sonnet as snt, tfpvi
model = tfpvi.VAE(tfpvi.encoders.GaussianMLP([16], 2), tfpvi.decoders.BernoulliMLP([16], [4, 4, 1]),
                  tfpvi.standard_normal_prior(2))
x = (np.random.default_rng(0).random([64, 4, 4, 1]) > 0.5).astype("float32")
if len(sys.argv) > 2:  # a file-size limit: writes past it fail with EFBIG (SIGXFSZ ignored, as shells do not)
  signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
  resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[2]), resource.RLIM_INFINITY))
tfpvi.train.fit(model, functools.partial(tfpvi.objectives.elbo, return_terms=True), x,
                optimizer=snt.optimizers.Adam(1e-2), steps=2000, batch_size=16, seed=3,
                output_dir=sys.argv[1], checkpoints=tfpvi.train.Checkpoints(every=4),
                logging=tfpvi.train.Logging(every=2, progress=False))
"""


def _check_write_fault(folder, result, reason, resume_in):
  """The run stopped with one sentence naming the reason and the checkpoint kept; a resume loses nothing."""
  import shutil

  assert result.returncode != 0
  last = result.stderr.strip().splitlines()[-1]
  assert reason in last and "run the same call (or command) again to resume" in last, result.stderr[-3000:]
  kept = int(last.split("the last checkpoint, ckpt-", 1)[1].split(" ", 1)[0])
  assert kept >= 4
  if resume_in != folder:
    shutil.copytree(folder, resume_in)
  history = fit(resume_in, kept + 8)
  assert history["step"].tolist() == list(range(2, kept + 9, 2))  # from the kept checkpoint: every row once
  assert not list((resume_in / "checkpoints").glob("*_temp"))  # the failed save's leftovers are gone


def test_a_file_size_limit_stops_training_with_what_is_kept_and_a_resume_loses_nothing(tmp_path):
  result = subprocess.run(
    [sys.executable, "-c", WRITE_FAULT_RUN, str(tmp_path), "12000"], capture_output=True, text=True, timeout=600
  )
  _check_write_fault(tmp_path, result, "a file-size limit (ulimit -f) was reached", tmp_path)


def test_a_full_disk_stops_training_with_what_is_kept_and_a_copy_resumes(tmp_path):
  tiny = tmp_path / "tiny"
  tiny.mkdir()
  mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(tiny)], capture_output=True)
  if mounted.returncode != 0:
    pytest.skip("no tiny filesystem can be mounted here (needs root); the file-size-limit test covers the same path")
  try:
    result = subprocess.run(
      [sys.executable, "-c", WRITE_FAULT_RUN, str(tiny / "run")], capture_output=True, text=True, timeout=600
    )
    _check_write_fault(tiny / "run", result, "the disk is full", tmp_path / "copy")
  finally:
    subprocess.run(["umount", str(tiny)], capture_output=True)
