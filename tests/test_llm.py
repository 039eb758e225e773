"""ppox.llm: the token math against hand-computed numbers, sampling against recomputation, the
learner's invariants (first-epoch ratio 1, micro-batches = one pass), the trainer's run directory,
kill -9 / resume with bit-equal weights, and bad input. The models are the demo's tiny GPT-2,
built (not downloaded) once per session."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

pytest.importorskip("transformers")

from ppox.cli import main  # noqa: E402
from ppox.errors import CheckpointError, ConfigError, NumericalError  # noqa: E402
from ppox.llm import demo  # noqa: E402
from ppox.llm import tokens as T  # noqa: E402
from ppox.llm.config import LLMConfig, llm_config_markdown  # noqa: E402
from ppox.llm.models import filter_logits, load_causal_lm, load_tokenizer, response_logprobs, sample  # noqa: E402
from ppox.llm.trainer import LLMTrainer, _rows  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


# --- token math, by hand ----------------------------------------------------------------------
MASK = torch.tensor([[True, True, False], [True, True, True]])


def test_token_kl_k1_and_k3_by_hand():
    logp = torch.tensor([[-1.0, -2.0, -9.0], [-0.5, -1.0, -1.5]])
    ref = torch.tensor([[-1.5, -1.0, -1.0], [-0.5, -2.0, -1.0]])
    k1 = T.token_kl(logp, ref, MASK, "k1")
    assert torch.allclose(k1, torch.tensor([[0.5, -1.0, 0.0], [0.0, 1.0, -0.5]]))
    k3 = T.token_kl(logp, ref, MASK, "k3")
    # k3 = (r − 1) − log r with log r = ref − logp
    want = [[math.exp(-0.5) - 1 + 0.5, math.exp(1) - 1 - 1, 0.0],
            [0.0, math.exp(-1) - 1 + 1, math.exp(0.5) - 1 - 0.5]]  # fmt: skip
    assert torch.allclose(k3, torch.tensor(want))


def test_token_rewards_kl_on_every_token_score_on_the_last_nothing_on_padding():
    kl = torch.tensor([[0.5, -1.0, 0.0], [0.0, 1.0, -0.5]])
    r = T.token_rewards(torch.tensor([1.0, 2.0]), kl, MASK, kl_coef=0.1)
    assert torch.allclose(r, torch.tensor([[-0.05, 0.1 + 1.0, 0.0], [0.0, -0.1, 0.05 + 2.0]]))


def test_masked_whiten_uses_masked_entries_only():
    x = torch.tensor([[1.0, 3.0, 100.0], [5.0, 7.0, 9.0]])
    mask = torch.tensor([[True, True, False], [True, True, False]])
    w = T.masked_whiten(x, mask)  # mean 4, population variance 5
    s = math.sqrt(5.0 + 1e-8)
    assert torch.allclose(w, torch.tensor([[-3 / s, -1 / s, 0.0], [1 / s, 3 / s, 0.0]]))
    kept = T.masked_whiten(x, mask, shift_mean=False)
    assert torch.allclose(
        kept, torch.tensor([[-3 / s + 4, -1 / s + 4, 0.0], [1 / s + 4, 3 / s + 4, 0.0]])
    )
    one = torch.tensor([[True, False, False], [False, False, False]])
    assert torch.equal(T.masked_whiten(x, one), torch.tensor([[1.0, 0, 0], [0, 0, 0]]))


def test_token_gae_over_a_padded_batch_by_hand():
    rewards = torch.tensor([[0.0, 1.0, 7.0], [0.5, 0.0, 2.0]])
    values = torch.tensor([[0.2, 0.4, 9.0], [1.0, 0.5, 0.25]])
    adv, ret = T.token_gae(rewards, values, MASK, gamma=0.9, lam=0.5)
    # row 0: last token is t=1 (terminal); padding at t=2 is ignored
    d1 = 1.0 - 0.4
    d0 = 0.0 + 0.9 * 0.4 - 0.2
    a0 = d0 + 0.9 * 0.5 * d1
    # row 1: three tokens
    e2 = 2.0 - 0.25
    e1 = 0.0 + 0.9 * 0.25 - 0.5
    e0 = 0.5 + 0.9 * 0.5 - 1.0
    b1 = e1 + 0.45 * e2
    b0 = e0 + 0.45 * b1
    assert torch.allclose(adv, torch.tensor([[a0, d1, 0.0], [b0, b1, e2]]), atol=1e-6)
    assert torch.allclose(
        ret, torch.tensor([[a0 + 0.2, d1 + 0.4, 0.0], [b0 + 1.0, b1 + 0.5, e2 + 0.25]]), atol=1e-6
    )


def test_rloo_leave_one_out_by_hand():
    adv = T.rloo_advantages(torch.tensor([1.0, 2.0, 3.0, 6.0]), 2)
    assert torch.equal(adv, torch.tensor([-1.0, 1.0, -3.0, 3.0]))
    adv3 = T.rloo_advantages(torch.tensor([1.0, 2.0, 3.0]), 3)  # baselines 2.5, 2, 1.5
    assert torch.allclose(adv3, torch.tensor([-1.5, 0.0, 1.5]))
    with pytest.raises(ValueError, match="at least 2"):
        T.rloo_advantages(torch.tensor([1.0]), 1)


def test_grpo_group_batch_and_no_scaling_by_hand():
    s = torch.tensor([1.0, 2.0, 3.0, 5.0, 5.0, 5.0])
    g = T.grpo_advantages(s, 3)  # group 1: mean 2, sample std 1; group 2: all equal → 0
    assert torch.allclose(g, torch.tensor([-1 / 1.0001, 0.0, 1 / 1.0001, 0.0, 0.0, 0.0]))
    none = T.grpo_advantages(s, 3, scale="none")
    assert torch.equal(none, torch.tensor([-1.0, 0.0, 1.0, 0.0, 0.0, 0.0]))
    batch = T.grpo_advantages(s, 3, scale="batch")
    assert torch.allclose(batch, none / (s.std() + 1e-4))


def test_loss_weights_token_sequence_constant():
    mask = torch.tensor([[True, False, False], [True, True, True]])
    assert torch.allclose(T.loss_weights(mask, "token", 3), mask.float() / 4)
    assert torch.allclose(
        T.loss_weights(mask, "sequence", 3), torch.tensor([[0.5, 0, 0], [1 / 6, 1 / 6, 1 / 6]])
    )
    assert torch.allclose(T.loss_weights(mask, "constant", 5), mask.float() / 10)


def test_top_k_and_top_p_filters_by_hand():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    k2 = filter_logits(logits, 2, 1.0)
    assert torch.isinf(k2[0, 2:]).all() and torch.isfinite(k2[0, :2]).all()
    p = filter_logits(logits, 0, 0.8)  # 0.5 + 0.3 reaches 0.8: two tokens kept
    assert torch.isfinite(p[0, :2]).all() and torch.isinf(p[0, 2:]).all()
    p = filter_logits(logits, 0, 0.81)
    assert torch.isfinite(p[0, :3]).all() and torch.isinf(p[0, 3])


# --- the tiny model ------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo model after a short pre-training (enough to speak the format), and its prompts."""
    out = tmp_path_factory.mktemp("llm-demo")
    torch.set_num_threads(1)
    demo.build(out, seed=0, steps=150)
    return out


def cfg_for(tiny: Path, run: Path, **kw) -> LLMConfig:
    base = dict(
        model=str(tiny / "model"), prompts=str(tiny / "prompts.jsonl"),
        reward_fn="ppox.llm.demo:digit_sum_reward", prompts_per_iteration=4, samples_per_prompt=2,
        max_new_tokens=6, epochs=2, minibatches=2, iterations=2, learning_rate=1e-3,
        run_dir=str(run), device="cpu", progress=False, tensorboard=False, checkpoint_every=1,
    )  # fmt: skip
    return LLMConfig(**{**base, **kw})


def test_sampled_logprobs_match_recomputation_with_left_padding(tiny):
    tok = load_tokenizer(str(tiny / "model"))
    model = load_causal_lm(str(tiny / "model"), "model")
    prompts = ["sum t12 =", "=", "sum t30 = 1 2"]  # three lengths: left padding
    enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    assert not enc["attention_mask"].bool().all()
    g = torch.Generator().manual_seed(0)
    s = sample(model, enc["input_ids"], enc["attention_mask"].bool(), max_new_tokens=8,
               temperature=0.7, top_k=0, top_p=1.0, eos_id=tok.eos_token_id,
               pad_id=tok.pad_token_id, stop_at_eos=True, generator=g)  # fmt: skip
    logp, _, _ = response_logprobs(model, s, 0.7)
    assert (logp - s.logprobs)[s.response_mask].abs().max() < 1e-5
    assert torch.equal(s.logprobs[~s.response_mask], torch.zeros_like(s.logprobs[~s.response_mask]))
    # padding changes no number: the third prompt alone gives the same log-probs
    alone = _rows(s, torch.tensor([2]))
    alone.prompt_ids, alone.prompt_mask = (
        enc["input_ids"][2:, -5:],
        enc["attention_mask"][2:, -5:].bool(),
    )
    lp_alone, _, _ = response_logprobs(model, alone, 0.7)
    width = lp_alone.shape[1]
    assert torch.allclose(lp_alone, logp[2:, :width], atol=1e-5)
    # after EOS: padding, masked out
    for row in range(3):
        ends = (s.response_ids[row] == tok.eos_token_id).nonzero()
        if len(ends):
            assert not s.response_mask[row, ends[0, 0] + 1 :].any()


@pytest.mark.parametrize("advantage", ["gae", "rloo", "grpo"])
def test_first_epoch_ratio_is_one(tiny, tmp_path, advantage):
    tr = LLMTrainer(cfg_for(tiny, tmp_path / "r", advantage=advantage, critic="shared"))
    batch, stats, _ = tr._rollout()
    assert stats["logprob_gap"] < 1e-5
    with torch.no_grad():
        logp, _, _ = tr._forward(batch.samples)
    assert (logp - batch.old_logp)[batch.mask].abs().max() < 1e-6
    assert torch.equal(batch.adv[~batch.mask], torch.zeros_like(batch.adv[~batch.mask]))


def _grads(tr: LLMTrainer, micro: int | None) -> torch.Tensor:
    object.__setattr__(tr.cfg, "micro_batch_size", micro)
    batch, _, _ = tr._rollout()
    tr.opt.zero_grad(set_to_none=True)
    rows = torch.arange(batch.mask.shape[0])
    w = T.loss_weights(batch.mask, tr.cfg.loss_aggregation, tr.cfg.max_new_tokens)
    keys = ("policy_loss", "value_loss", "entropy", "clip_fraction", "approx_kl", "tokens")
    sums = {k: torch.zeros(()) for k in keys}
    start = 0
    for r in tr._micro(rows):
        tr._micro_step(batch, r, w[start : start + len(r)], sums)
        start += len(r)
    return torch.cat([p.grad.reshape(-1) for p in tr.params if p.grad is not None])


@pytest.mark.parametrize("aggregation", ["token", "sequence"])
def test_micro_batches_add_up_to_one_pass(tiny, tmp_path, aggregation):
    a = LLMTrainer(
        cfg_for(tiny, tmp_path / "a", loss_aggregation=aggregation, epochs=1, minibatches=1)
    )
    b = LLMTrainer(
        cfg_for(tiny, tmp_path / "b", loss_aggregation=aggregation, epochs=1, minibatches=1)
    )
    ga, gb = _grads(a, None), _grads(b, 2)
    assert torch.allclose(ga, gb, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("advantage", ["gae", "rloo", "grpo"])
def test_train_writes_a_run_directory(tiny, tmp_path, advantage):
    run = tmp_path / "run"
    s = LLMTrainer(cfg_for(tiny, run, advantage=advantage, kl_target=0.5)).train()
    assert s["iterations"] == 2 and s["generated_tokens"] > 0
    rows = list(__import__("csv").DictReader((run / "metrics.csv").open()))
    assert [r["iteration"] for r in rows] == ["1", "2"]
    for key in ("reward_mean", "kl", "entropy", "response_length", "clip_fraction", "logprob_gap"):
        assert rows[-1][key] != ""
    assert (rows[-1]["value_error"] != "") == (advantage == "gae")
    samples = [json.loads(x) for x in (run / "samples.jsonl").read_text().splitlines()]
    assert {x["iteration"] for x in samples} == {1, 2} and "completion" in samples[0]
    point = json.loads((run / "checkpoint.json").read_text())
    assert point == {"iteration": 2, "dir": "checkpoint-000002"}
    assert not (run / "checkpoint-000001").exists()
    # the checkpoint's policy loads with from_pretrained, tokenizer included
    policy = run / "checkpoint-000002" / "policy"
    assert (
        load_causal_lm(str(policy), "model") is not None and load_tokenizer(str(policy)) is not None
    )


def test_lora_trains_adapters_only_against_the_base_as_reference(tiny, tmp_path):
    run = tmp_path / "lora"
    tr = LLMTrainer(cfg_for(tiny, run, lora_r=4, lora_alpha=8, advantage="grpo", iterations=2))
    assert tr.ref is None  # the reference is the policy with its adapters off
    trained = tr._trained()
    assert trained and all("lora_" in k for k in trained)
    before = {k: p.detach().clone() for k, p in tr.policy.named_parameters() if "lora_" not in k}
    batch, _, _ = tr._rollout()
    assert (batch.ref_logp - batch.old_logp)[batch.mask].abs().max() < 1e-5  # B starts at 0
    tr.train()
    after = dict(tr.policy.named_parameters())
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert (run / "checkpoint-000002" / "policy" / "adapter_config.json").is_file()
    resumed = LLMTrainer(
        cfg_for(tiny, run, lora_r=4, lora_alpha=8, advantage="grpo", iterations=2), resume=run
    )
    assert all(torch.equal(p, trained[k]) for k, p in resumed._trained().items())


def test_critic_warmup_leaves_the_policy_alone(tiny, tmp_path):
    tr = LLMTrainer(cfg_for(tiny, tmp_path / "w", critic_warmup=1, iterations=2))
    policy = {k: p.detach().clone() for k, p in tr._trained().items() if k.startswith("policy.")}
    critic = {k: p.detach().clone() for k, p in tr._trained().items() if k.startswith("critic.")}
    batch, _, _ = tr._rollout()
    tr._learn(batch)  # iteration 0 < critic_warmup
    now = tr._trained()
    assert all(torch.equal(now[k], v) for k, v in policy.items())
    assert any(not torch.equal(now[k], v) for k, v in critic.items())
    tr.iteration = 1
    batch, _, _ = tr._rollout()
    tr._learn(batch)
    assert any(not torch.equal(tr._trained()[k], v) for k, v in policy.items())
    with pytest.raises(
        ConfigError, match="critic_warmup=1 needs advantage=gae and critic=separate"
    ):
        cfg_for(tiny, tmp_path / "x", critic_warmup=1, critic="shared").validate()


def test_learning_raises_the_reward(tiny, tmp_path):
    """The demo task in small: 25 PPO iterations lift the mean score clearly."""
    cfg = cfg_for(tiny, tmp_path / "r", iterations=25, prompts_per_iteration=16, samples_per_prompt=4,
                  epochs=4, minibatches=4, max_new_tokens=10, learning_rate=3e-4, checkpoint_every=25)  # fmt: skip
    LLMTrainer(cfg).train()
    rows = list(__import__("csv").DictReader((tmp_path / "r" / "metrics.csv").open()))
    first = sum(float(r["reward_mean"]) for r in rows[:3]) / 3
    last = sum(float(r["reward_mean"]) for r in rows[-3:]) / 3
    assert last > first + 0.15, (first, last)


def _weights(run: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    point = json.loads((run / "checkpoint.json").read_text())
    return load_file(str(run / point["dir"] / "weights.safetensors"))


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "ppox", "llm", "train", *args]


def test_kill_9_then_resume_is_bit_equal(tiny, tmp_path):
    flags = ["--model", str(tiny / "model"), "--prompts", str(tiny / "prompts.jsonl"),
             "--reward-fn", "ppox.llm.demo:digit_sum_reward", "--prompts-per-iteration", "8",
             "--samples-per-prompt", "2", "--max-new-tokens", "8", "--iterations", "14",
             "--checkpoint-every", "1", "--device", "cpu", "--seed", "5", "--no-progress",
             "--no-tensorboard", "--learning-rate", "1e-3"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    subprocess.run(_cli(*flags, "--run-dir", str(whole)), check=True, env=env, capture_output=True)
    p = subprocess.Popen(_cli(*flags, "--run-dir", str(cut)), env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.time() + 120
    while time.time() < deadline:
        point = cut / "checkpoint.json"
        if point.exists() and json.loads(point.read_text())["iteration"] >= 3:
            break
        time.sleep(0.02)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    done = json.loads((cut / "checkpoint.json").read_text())["iteration"]
    assert 3 <= done < 14, "the kill came too late to test anything"
    r = subprocess.run(
        _cli("--resume", str(cut), "--no-progress"), env=env, capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    a, b = _weights(whole), _weights(cut)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    rows = lambda run: (run / "metrics.csv").read_text().splitlines()  # noqa: E731
    strip = lambda lines: [",".join(x.split(",")[:2] + x.split(",")[4:]) for x in lines]  # noqa: E731
    assert strip(rows(whole)) == strip(rows(cut))  # same rows but the timings


@pytest.mark.distributed
def test_torchrun_two_workers_share_the_batch_and_stay_identical(tiny, tmp_path):
    """Two workers on one machine: each samples half of the global batch's prompts, gradients are
    averaged, the replicas are compared at every checkpoint (an error otherwise)."""
    run = tmp_path / "dist"
    torchrun = str(Path(sys.executable).with_name("torchrun"))
    cmd = [torchrun, "--standalone", "--nproc-per-node", "2", "-m", "ppox", "llm", "train",
           "--model", str(tiny / "model"), "--prompts", str(tiny / "prompts.jsonl"),
           "--reward-fn", "ppox.llm.demo:digit_sum_reward", "--prompts-per-iteration", "4",
           "--samples-per-prompt", "2", "--max-new-tokens", "6", "--iterations", "3",
           "--checkpoint-every", "1", "--device", "cpu", "--no-progress", "--no-tensorboard",
           "--run-dir", str(run)]  # fmt: skip
    r = subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True,
                       text=True, timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["iterations"] == 3
    rows = list(__import__("csv").DictReader((run / "metrics.csv").open()))
    assert len(rows) == 3
    lengths = [float(x["response_length"]) for x in rows]
    tokens = [int(x["generated_tokens"]) for x in rows]
    # generated tokens count both workers' 8 completions each
    assert tokens[0] == round(lengths[0] * 16)


# --- bad input ----------------------------------------------------------------------------------
def run_cli(capsys, *args: str) -> tuple[int, str]:
    code = main(["llm", *args])
    return code, capsys.readouterr().err


def test_config_rules_are_one_line_errors(tiny, tmp_path, capsys):
    base = ["train", "--model", str(tiny / "model"), "--prompts", str(tiny / "prompts.jsonl")]
    cases = [
        ([], "exactly one of reward_fn"),
        (["--reward-fn", "x:y", "--reward-model", "m"], "exactly one of reward_fn"),
        (["--reward-fn", "nofunction"], "reward_fn='nofunction' is not allowed: module:function"),
        (["--reward-fn", "ppox.llm.demo:nope"], "has no 'nope'"),
        (["--reward-fn", "ppox.llm.demo:digit_sum_reward", "--advantage", "rloo"], "samples_per_prompt ≥ 2"),
        (["--reward-fn", "ppox.llm.demo:digit_sum_reward", "--minibatches", "3"], "must divide the batch"),
        (["--reward-fn", "ppox.llm.demo:digit_sum_reward", "--temperature", "0"], "temperature=0"),
        (["--reward-fn", "ppox.llm.demo:digit_sum_reward", "--top-p", "1.5"], "top_p=1.5"),
        (["--reward-fn", "ppox.llm.demo:digit_sum_reward", "--max-prompt-tokens", "2",
          "--run-dir", str(tmp_path / "x")], "row 1 is 3 tokens long"),
    ]  # fmt: skip
    for extra, message in cases:
        code, err = run_cli(capsys, *base, *extra)
        assert code == 2 and err.startswith("ppox: error: ") and message in err, (extra, err)
        assert err.count("\n") == 1
    assert not (tmp_path / "x").exists()


def test_bad_prompt_files_name_the_row(tiny, tmp_path):
    from ppox.llm.data import read_prompts

    bad = tmp_path / "p.jsonl"
    bad.write_text('{"prompt": "sum t12 ="}\n{"text": "x"}\n')
    with pytest.raises(ConfigError, match="row 2 has no text in column 'prompt'"):
        read_prompts(bad, "prompt")
    bad.write_text('{"prompt": "a"}\nnot json\n')
    with pytest.raises(ConfigError, match="line 2"):
        read_prompts(bad, "prompt")
    with pytest.raises(ConfigError, match="must end in"):
        read_prompts(tmp_path / "p.txt", "prompt")
    csv_file = tmp_path / "p.csv"
    csv_file.write_text("prompt,target\nsum t12 =,12\n")
    assert read_prompts(csv_file, "prompt") == [{"prompt": "sum t12 =", "target": "12"}]


def test_a_reward_model_scores_prompt_and_completion(tiny, tmp_path):
    """reward_model: a sequence-classification model (one output) over prompt + completion, read
    with its own tokenizer; here a tiny GPT-2 classifier built from a config."""
    from transformers import GPT2Config, GPT2ForSequenceClassification

    from ppox.llm.data import Scorer

    tok = demo.build_tokenizer()
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=len(tok), n_positions=32, n_embd=16, n_layer=1, n_head=2,
                     num_labels=1, pad_token_id=tok.pad_token_id)  # fmt: skip
    rm = GPT2ForSequenceClassification(cfg).eval()
    rm.save_pretrained(tmp_path / "rm")
    tok.save_pretrained(tmp_path / "rm")
    scorer = Scorer(None, str(tmp_path / "rm"), torch.device("cpu"))
    prompts, completions = ["sum t12 =", "sum t30 ="], [" 1 2", " 9 9 9"]
    scores = scorer(prompts, completions, {})
    with torch.no_grad():  # each alone, unpadded: the same numbers
        alone = [
            float(rm(**tok(p + c, return_tensors="pt")).logits[0, 0])
            for p, c in zip(prompts, completions)
        ]
    assert torch.allclose(scores, torch.tensor(alone), atol=1e-5)
    run = tmp_path / "run"
    s = LLMTrainer(
        cfg_for(tiny, run, reward_fn=None, reward_model=str(tmp_path / "rm"), iterations=1)
    ).train()
    assert s["iterations"] == 1


def nan_reward(prompts, completions, **_):
    return [float("nan")] * len(completions)


def failing_reward(prompts, completions, **_):
    raise KeyError("target")


def test_a_failing_reward_function_is_one_line_naming_it(tiny, tmp_path):
    from ppox.errors import PpoxError

    cfg = cfg_for(tiny, tmp_path / "r", reward_fn=f"{__name__}:failing_reward")
    with pytest.raises(
        PpoxError, match=r"failing_reward raised KeyError: 'target' \(at .*test_llm.py:\d+\)"
    ):
        LLMTrainer(cfg).train()


def test_parquet_prompts_and_the_cli_generate_and_eval(tiny, tmp_path, capsys):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ppox.llm.data import read_prompts

    rows = [json.loads(x) for x in (tiny / "prompts.jsonl").read_text().splitlines()][:6]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "p.parquet")
    assert read_prompts(tmp_path / "p.parquet", "prompt") == rows
    run = tmp_path / "run"
    LLMTrainer(cfg_for(tiny, run, prompts=str(tmp_path / "p.parquet"), iterations=1)).train()
    assert main(["llm", "generate", str(run), "--prompt", "sum t12 =", "--greedy"]) == 0
    out = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert out[0]["prompt"] == "sum t12 =" and isinstance(out[0]["completion"], str)
    code = main(["llm", "eval", str(run), "--prompts", str(tmp_path / "p.parquet"),
                 "--reward-fn", "ppox.llm.demo:digit_sum_reward", "--samples-per-prompt", "2"])  # fmt: skip
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["prompts"] == 12 and 0.0 <= report["reward_mean"] <= 1.0


def test_adaptive_kl_coefficient_moves_beta(tiny, tmp_path):
    """kl_target: PPO-Penalty's rule on the completions' KL; far below the target β halves each
    iteration (the row shows the β the iteration used)."""
    run = tmp_path / "r"
    LLMTrainer(cfg_for(tiny, run, iterations=3, kl_target=1e5)).train()
    betas = [
        float(r["kl_coef"]) for r in __import__("csv").DictReader((run / "metrics.csv").open())
    ]
    assert betas == [0.05, 0.025, 0.0125]


def test_a_non_finite_reward_stops_the_run_naming_it(tiny, tmp_path):
    cfg = cfg_for(tiny, tmp_path / "r", reward_fn=f"{__name__}:nan_reward")
    with pytest.raises(NumericalError, match="non-finite score"):
        LLMTrainer(cfg).train()


def test_a_reward_function_named_in_a_file_needs_consent(tiny, tmp_path, capsys):
    cfg = cfg_for(tiny, tmp_path / "r", reward_fn="os:getcwd").to_dict()
    path = tmp_path / "c.json"
    path.write_text(json.dumps(cfg))
    code, err = run_cli(capsys, "train", "--config", str(path))
    assert code == 2 and "would import the module 'os'" in err and "--trust-imports" in err
    assert not (tmp_path / "r").exists()


def test_pickled_weights_are_refused(tiny, tmp_path):
    """A model directory with pickled weights only is an error, never unpickled."""
    d = tmp_path / "pickled"
    d.mkdir()
    (d / "config.json").write_text((tiny / "model" / "config.json").read_text())
    torch.save(load_causal_lm(str(tiny / "model"), "model").state_dict(), d / "pytorch_model.bin")
    with pytest.raises(ConfigError, match="model='.*' cannot be loaded"):
        load_causal_lm(str(d), "model")


def test_corrupted_checkpoint_is_refused(tiny, tmp_path):
    run = tmp_path / "r"
    LLMTrainer(cfg_for(tiny, run, iterations=1)).train()
    w = run / "checkpoint-000001" / "weights.safetensors"
    data = bytearray(w.read_bytes())
    data[-3] ^= 0xFF
    w.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        LLMTrainer(cfg_for(tiny, run, iterations=2), resume=run)


def test_config_reference_is_in_sync():
    assert (ROOT / "docs" / "llm_config.md").read_text() == llm_config_markdown()


def test_presets_build_valid_configs(capsys):
    from ppox.llm.presets import LLM_PRESETS

    for preset in LLM_PRESETS.values():
        preset.config().replace(model="m", prompts="p.jsonl", reward_fn="a:b").validate()
    assert main(["llm", "presets"]) == 0
    assert "demo-grpo" in capsys.readouterr().out
