"""Acronyms of the field and their expansions, matched both ways (LLM <-> large language model).

A small, maintained table: add a line when subscribers type an acronym that papers spell out
(or the reverse). Keys are lower case; each value lists the expansions, most common first.
"""

from __future__ import annotations

ACRONYMS: dict[str, tuple[str, ...]] = {
    "ai": ("artificial intelligence",),
    "asr": ("automatic speech recognition", "speech recognition"),
    "bnn": ("bayesian neural network",),
    "cnn": ("convolutional neural network",),
    "cot": ("chain of thought",),
    "cv": ("computer vision",),
    "dl": ("deep learning",),
    "dpo": ("direct preference optimization",),
    "eeg": ("electroencephalography",),
    "fl": ("federated learning",),
    "gan": ("generative adversarial network",),
    "gnn": ("graph neural network",),
    "icl": ("in context learning",),
    "ir": ("information retrieval",),
    "kd": ("knowledge distillation",),
    "kg": ("knowledge graph",),
    "llm": ("large language model",),
    "lm": ("language model",),
    "lora": ("low rank adaptation",),
    "lstm": ("long short term memory",),
    "ml": ("machine learning",),
    "mllm": ("multimodal large language model",),
    "moe": ("mixture of experts",),
    "mt": ("machine translation",),
    "nerf": ("neural radiance field",),
    "nlp": ("natural language processing",),
    "ood": ("out of distribution",),
    "peft": ("parameter efficient fine tuning",),
    "qa": ("question answering",),
    "rag": ("retrieval augmented generation",),
    "rl": ("reinforcement learning",),
    "rlhf": ("reinforcement learning from human feedback",),
    "rnn": ("recurrent neural network",),
    "sft": ("supervised fine tuning",),
    "ssm": ("state space model",),
    "tts": ("text to speech",),
    "vae": ("variational autoencoder",),
    "vit": ("vision transformer",),
    "vla": ("vision language action",),
    "vlm": ("vision language model",),
    "vqa": ("visual question answering",),
}
