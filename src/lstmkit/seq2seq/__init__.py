"""Encoder-decoder models: an LSTM encoder whose final states start an LSTM decoder, with optional
Bahdanau or Luong attention, teacher forcing through the shared trainer, greedy and beam decoding,
and the classic teaching tasks (reversal, addition, date normalisation)."""
from .decoding import Hypothesis, beam_search, greedy
from .model import ATTENTIONS, EncoderDecoder, Memory
from .seq2seq import Seq2Seq, Seq2SeqConfig, char_accuracy
from .tasks import TASKS, read_pairs, teaching_pairs

__all__ = ["ATTENTIONS", "EncoderDecoder", "Hypothesis", "Memory", "Seq2Seq", "Seq2SeqConfig", "TASKS",
           "beam_search", "char_accuracy", "greedy", "read_pairs", "teaching_pairs"]
