"""Reference outputs of a Hugging Face BERT checkpoint (run in .venv-ref, PyTorch CPU).

    python hf_bert_reference.py CHECKPOINT_DIR TEXTS.json OUT.npz [--max-length 512]

Writes, per text i: ``ids_i`` (token ids, truncated at max length), ``hidden_i`` (last hidden
state, transformers BertModel) and ``sentence`` (sentence-transformers embeddings, all texts).
"""
import argparse
import json

import numpy as np
import torch
from sentence_transformers import SentenceTransformer
from transformers import AutoModel, AutoTokenizer

parser = argparse.ArgumentParser()
parser.add_argument("checkpoint")
parser.add_argument("texts")
parser.add_argument("out")
parser.add_argument("--max-length", type=int, default=512)
args = parser.parse_args()

texts = json.load(open(args.texts, encoding="utf-8"))
tokenizer = AutoTokenizer.from_pretrained(args.checkpoint)
model = AutoModel.from_pretrained(args.checkpoint).eval()
arrays = {}
with torch.no_grad():
    for i, text in enumerate(texts):
        enc = tokenizer(text, truncation=True, max_length=args.max_length, return_tensors="pt")
        arrays[f"ids_{i}"] = enc["input_ids"][0].numpy()
        arrays[f"hidden_{i}"] = model(**enc).last_hidden_state[0].numpy()
st = SentenceTransformer(args.checkpoint, device="cpu")
st.max_seq_length = args.max_length
arrays["sentence"] = st.encode(texts, convert_to_numpy=True, batch_size=8)
np.savez(args.out, **arrays)
