from __future__ import annotations

import itertools

import pytest
import torch

from speechrnn.model import CELLS, POOLINGS, ModelConfig, SpeechRNN, count_parameters


def build(cell: str, pooling: str, **overrides: object) -> SpeechRNN:
    torch.manual_seed(0)
    config = ModelConfig(n_mels=20, n_classes=5, cell=cell, pooling=pooling, hidden_size=16, num_layers=2,
                         dropout=0.0, **overrides)
    return SpeechRNN(config)


VARIANTS = [
    {},
    {"bidirectional": True},
    {"conv_channels": 8, "conv_stride": 2},
]


@pytest.mark.parametrize(("cell", "pooling"), list(itertools.product(CELLS, POOLINGS)))
@pytest.mark.parametrize("variant", VARIANTS, ids=["plain", "bidirectional", "conv"])
def test_shapes_gradients_and_variable_lengths(cell: str, pooling: str, variant: dict) -> None:
    model = build(cell, pooling, **variant)
    frames = torch.randn(4, 30, 20)
    lengths = torch.tensor([30, 17, 9, 30])

    logits = model(frames, lengths)
    assert logits.shape == (4, 5)

    logits.sum().backward()
    grads = {name: p.grad for name, p in model.named_parameters()}
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values())
    assert grads["rnn.weight_ih_l0"].abs().sum() > 0

    model.eval()
    with torch.no_grad():
        batched = model(frames, lengths)
        alone = torch.cat([model(frames[i:i + 1, : int(n)]) for i, n in enumerate(lengths)])
        # what lies past a sequence's length must not matter
        scrambled = frames.clone()
        scrambled[1, 17:] = 100.0
        scrambled_out = model(scrambled, lengths)
    torch.testing.assert_close(batched, alone, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(batched, scrambled_out, atol=1e-5, rtol=1e-4)


def test_normalization_is_applied() -> None:
    model = build("gru", "mean").eval()
    plain = build("gru", "mean").eval()
    frames = torch.randn(2, 10, 20) * 3 + 5
    model.set_normalization(torch.full((20,), 5.0), torch.full((20,), 3.0))
    with torch.no_grad():
        torch.testing.assert_close(model(frames), plain((frames - 5.0) / 3.0))
    assert model.state_dict()["feature_mean"][0] == 5.0


def test_conv_stride_shortens_sequence() -> None:
    config = ModelConfig(conv_channels=8, conv_kernel=5, conv_stride=2)
    assert config.sequence_lengths(torch.tensor([97, 10])).tolist() == [49, 5]
    assert config.rnn_input_size == 8
    assert ModelConfig().rnn_input_size == 40


def test_config_validation_and_round_trip() -> None:
    with pytest.raises(ValueError, match="cell"):
        ModelConfig(cell="transformer")
    with pytest.raises(ValueError, match="pooling"):
        ModelConfig(pooling="max")
    config = ModelConfig(cell="lstm", bidirectional=True)
    assert ModelConfig.from_dict(config.to_dict()) == config
    assert config.output_size == 2 * config.hidden_size


def test_parameter_count_grows_with_hidden_size() -> None:
    small = count_parameters(SpeechRNN(ModelConfig(hidden_size=32)))
    large = count_parameters(SpeechRNN(ModelConfig(hidden_size=64)))
    assert 0 < small < large


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_runs_on_cuda() -> None:
    model = build("gru", "attention").cuda().eval()
    with torch.no_grad():
        cpu = build("gru", "attention").eval()(torch.ones(2, 12, 20))
        gpu = model(torch.ones(2, 12, 20, device="cuda")).cpu()
    torch.testing.assert_close(cpu, gpu, atol=1e-4, rtol=1e-3)
