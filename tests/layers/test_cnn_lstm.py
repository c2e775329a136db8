"""CNNLSTM / CNNLSTM1d: shapes, one encoder call over N*L frames, and equality with a hand loop
(encode each frame alone, step torch.nn.LSTMCell over each sequence's real steps, apply the head)."""
import pytest
import torch
from torch import nn

import lstmkit
from lstmkit.layers import CNNLSTM, CNNLSTM1d

N, L, C, HH, WW, F_, HID = 3, 4, 2, 6, 6, 8, 5
LENGTHS = torch.tensor([4, 2, 1])



def small_cnn():
    return nn.Sequential(nn.Conv2d(C, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
                         nn.Flatten(), nn.Linear(16, F_))


def hand_loop(model, x, lengths):
    """Each frame encoded alone; torch.nn.LSTMCell stepped over each sequence; head on the last h."""
    lstm = model.lstm
    cell = nn.LSTMCell(lstm.input_size, lstm.hidden_size)
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(cell, name).copy_(getattr(lstm, name + "_l0"))
    outs = []
    for n in range(x.shape[0]):
        h = c = torch.zeros(1, lstm.hidden_size)
        for t in range(int(lengths[n])):
            feat = model.frame_encoder(x[n, t:t + 1]).flatten(1)
            h, c = cell(feat, (h, c))
        outs.append(h)
    y = torch.cat(outs)
    return model.head(y) if model.head is not None else y


def test_cnn_lstm_equals_hand_loop_with_lengths():
    model = CNNLSTM(small_cnn(), head=nn.Linear(HID, 3), feature_size=F_, hidden_size=HID)
    assert isinstance(model.lstm, lstmkit.LSTM) and model.lstm.batch_first
    x = torch.randn(N, L, C, HH, WW)
    calls = []
    model.frame_encoder.register_forward_hook(lambda mod, inp, out: calls.append(inp[0].shape[0]))
    y = model(x, lengths=LENGTHS)
    assert calls == [N * L]  # one batched encoder call over every frame
    assert y.shape == (N, 3)
    torch.testing.assert_close(y, hand_loop(model, x, LENGTHS))
    torch.testing.assert_close(model(x), hand_loop(model, x, [L] * N))


def test_shapes_return_sequences_and_other_lstms():
    x = torch.randn(N, L, C, HH, WW)
    seq = CNNLSTM(small_cnn(), lstmkit.LSTM(F_, HID, batch_first=True, bidirectional=True),
                  return_sequences=True)
    assert seq(x).shape == (N, L, 2 * HID)
    torch_lstm = CNNLSTM(small_cnn(), nn.LSTM(F_, HID, batch_first=True), nn.Linear(HID, 1))
    assert torch_lstm(x).shape == (N, 1)
    lstmkit_preset = CNNLSTM(small_cnn(), lstmkit.LSTM(F_, HID, batch_first=True, preset="CIFG"))
    with lstmkit.use_backend("reference"):
        assert lstmkit_preset(x, lengths=LENGTHS).shape == (N, HID)


def test_cnn_lstm_1d_equals_manual_subsequences():
    model = CNNLSTM1d(in_features=2, subseq_len=4, hidden_size=HID, out_features=1, channels=6,
                      kernel_size=3, pool=2)
    x = torch.randn(N, 12, 2)  # 3 subsequences of 4 steps
    y = model(x)
    assert y.shape == (N, 1)
    frames = torch.stack([x[:, s * 4:(s + 1) * 4].transpose(1, 2) for s in range(3)], dim=1)
    torch.testing.assert_close(y, hand_loop(model, frames, [3] * N))
    y.sum().backward()
    assert model.frame_encoder[0].weight.grad is not None


def test_bad_inputs_say_what_was_expected():
    model = CNNLSTM(small_cnn(), feature_size=F_, hidden_size=HID)
    with pytest.raises(ValueError, match=r"CNNLSTM: expected input \(N, L, \*frame\) of rank >= 3"):
        model(torch.randn(N, L))
    with pytest.raises(ValueError, match="CNNLSTM: expected every length >= 1"):
        model(torch.randn(N, L, C, HH, WW), lengths=[0, 1, 1])
    with pytest.raises(ValueError, match="expected a batch_first=True lstm"):
        CNNLSTM(small_cnn(), nn.LSTM(F_, HID))
    with pytest.raises(ValueError, match="expected feature_size and hidden_size"):
        CNNLSTM(small_cnn())
    one_d = CNNLSTM1d(in_features=1, subseq_len=4, hidden_size=HID)
    with pytest.raises(ValueError, match=r"CNNLSTM1d: expected input \(N, T, 1\) with T a multiple"):
        one_d(torch.randn(N, 10, 1))
    with pytest.raises(ValueError, match="subseq_len >= kernel_size"):
        CNNLSTM1d(in_features=1, subseq_len=2, hidden_size=HID, kernel_size=3)
