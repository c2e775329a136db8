"""Character language modelling and text generation: the LSTM model (stateful truncated-BPTT
training through the shared trainer, bits per character, sampling) and n-gram baselines."""
from .model import CharLanguageModel, CharLSTM, LanguageModelConfig, pydoc_topics
from .ngram import CharNGram

__all__ = ["CharLanguageModel", "CharLSTM", "CharNGram", "LanguageModelConfig", "pydoc_topics"]
