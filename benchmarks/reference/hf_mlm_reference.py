"""A BERT checkpoint *with* its masked-LM head, and the head's reference logits (run in .venv-ref).

    python hf_mlm_reference.py ENCODER_CHECKPOINT OUT_CHECKPOINT TEXTS.json OUT.npz

No BERT checkpoint with an MLM head ships in a package here (all-MiniLM-L6-v2 is encoder-only), so
this builds one the way Hugging Face stores them: ``BertForMaskedLM`` with the encoder checkpoint's
weights and a ``cls.predictions`` head whose every parameter is drawn with a fixed seed (an
initialised head would be LayerNorm ones, zero biases: a mapping that swapped them could not be
told apart), saved with ``save_pretrained`` (safetensors; the decoder tied to the word
embeddings). Writes, per text i with ``[MASK]`` markers: ``ids_i`` (token ids) and ``logits_i``
([masks, vocab], transformers' BertForMaskedLM at the [MASK] positions).
"""
import argparse
import json
import os
import shutil

import numpy as np
import torch
from transformers import AutoTokenizer, BertConfig, BertForMaskedLM, BertModel

parser = argparse.ArgumentParser()
parser.add_argument("encoder_checkpoint")
parser.add_argument("out_checkpoint")
parser.add_argument("texts")
parser.add_argument("out")
args = parser.parse_args()

config = BertConfig.from_pretrained(args.encoder_checkpoint)
model = BertForMaskedLM(config).eval()
encoder = BertModel.from_pretrained(args.encoder_checkpoint, add_pooling_layer=False)
missing, unexpected = model.bert.load_state_dict(encoder.state_dict(), strict=False)
assert not missing and not unexpected, (missing, unexpected)
generator = torch.Generator().manual_seed(0)
with torch.no_grad():
    head = model.cls.predictions
    for name, param in [("dense", head.transform.dense.weight), ("dense_b", head.transform.dense.bias),
                        ("ln_w", head.transform.LayerNorm.weight), ("ln_b", head.transform.LayerNorm.bias),
                        ("bias", head.bias)]:
        noise = torch.randn(param.shape, generator=generator)
        param.copy_({"dense": 0.05 * noise, "ln_w": 1.0 + 0.1 * noise}.get(name, 0.1 * noise))
model.tie_weights()
assert model.cls.predictions.decoder.weight.data_ptr() == model.bert.embeddings.word_embeddings.weight.data_ptr()
model.save_pretrained(args.out_checkpoint)
tokenizer = AutoTokenizer.from_pretrained(args.encoder_checkpoint)
tokenizer.save_pretrained(args.out_checkpoint)
shutil.copy(os.path.join(args.encoder_checkpoint, "vocab.txt"), args.out_checkpoint)  # BERT's layout

texts = json.load(open(args.texts, encoding="utf-8"))
arrays = {}
with torch.no_grad():
    for i, text in enumerate(texts):
        enc = tokenizer(text, return_tensors="pt")
        logits = model(**enc).logits[0]
        positions = (enc["input_ids"][0] == tokenizer.mask_token_id).nonzero().flatten()
        arrays[f"ids_{i}"] = enc["input_ids"][0].numpy()
        arrays[f"logits_{i}"] = logits[positions].numpy()
np.savez(args.out, **arrays)
