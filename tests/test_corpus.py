import os
import re

import keras
import numpy as np
import pytest

from rw_tf.data.corpus import SplitCounts, embedded_corpus, read_text_files, split_sentences
from rw_tf.data.multilingual import catalogue_messages, django_dir, multilingual_documents
from rw_tf.data.pretraining_dataset import pretraining_dataset
from rw_tf.data.segment_pairs import pack_segments, segment_pair_candidates, word_count
from rw_tf.tasks import PretrainingTask, PretrainingTaskConfig
from rw_tf.training import run_task


def test_split_sentences_rule():
    text = ("The first sentence is here. The second one follows!\n\n"
            "   code = block()\n   more = code()\n\n"
            ">>> print('prompt')\n\n"
            "Heading\n=======\n\nIs it a question? Yes it is a question.")
    assert split_sentences(text, min_sentence_chars=5) == [
        "The first sentence is here.", "The second one follows!", "Heading",
        "Is it a question?", "Yes it is a question."]


def test_split_sentences_rejects_non_string():
    with pytest.raises(TypeError, match="expects str"):
        split_sentences(b"bytes")


def test_embedded_corpus_is_real_and_deterministic(pydoc_documents):
    assert len(pydoc_documents) > 50
    assert sum(len(s.split()) for d in pydoc_documents for s in d) > 20000
    assert embedded_corpus(include_stdlib_docstrings=False)[:3] == pydoc_documents[:3]
    assert all(len(d) >= 2 for d in pydoc_documents)


def test_read_text_files_replaces_invalid_utf8(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_bytes(b"Alpha sentence one is long enough. Beta sentence \xff is long too.\n---\n"
                     b"Gamma sentence is long enough. Delta sentence is long enough.\n")
    counts = SplitCounts()
    docs = read_text_files([str(path)], counts=counts)
    assert len(docs) == 2 and "\ufffd" in docs[0][1]
    assert counts == {"invalid_utf8_sequences": 1}
    # A truncated sequence and a stray continuation byte are two; a U+FFFD the file spells is none.
    path.write_bytes("Alpha sentence one is long \ufffd enough. ".encode() + b"Beta \xe2\x82 and \x80 too long.\n")
    counts = SplitCounts()
    read_text_files([str(path)], counts=counts)
    assert counts["invalid_utf8_sequences"] == 2
    with pytest.raises(FileNotFoundError):
        read_text_files([str(tmp_path / "missing.txt")])


def test_segment_pairs_use_other_documents_for_random(pydoc_documents):
    cols = segment_pair_candidates(pydoc_documents, target_words=20, seed=1)
    seg_to_doc = {}
    for i, doc in enumerate(pydoc_documents):
        for seg in pack_segments(doc, 20):
            seg_to_doc.setdefault(seg, set()).add(i)
    for _, r, d in zip(cols["text_a"], cols["text_random"], cols["doc_id"]):
        assert d not in seg_to_doc[r] or len(seg_to_doc[r]) > 1
    assert cols == segment_pair_candidates(pydoc_documents, target_words=20, seed=1)


def test_segment_pairs_need_two_documents():
    with pytest.raises(ValueError, match="at least two documents"):
        segment_pair_candidates([["One sentence here.", "Two sentences here."]], target_words=1)


MULTILINGUAL = {
    "fr": ("Le chat dort sur le canapé du salon. Écoutez bien ce que je vais vous dire maintenant. "
           "« Bonjour », dit-il à son voisin de palier.",
           ["Le chat dort sur le canapé du salon.", "Écoutez bien ce que je vais vous dire maintenant.",
            "« Bonjour », dit-il à son voisin de palier."]),
    "ru": ("Москва является столицей России уже много веков. Это крупнейший город страны по населению.",
           ["Москва является столицей России уже много веков.", "Это крупнейший город страны по населению."]),
    "zh": ("北京是中华人民共和国的首都和政治文化中心。上海是中国最大的经济中心城市之一！你去过这两个城市吗？",
           ["北京是中华人民共和国的首都和政治文化中心。", "上海是中国最大的经济中心城市之一！",
            "你去过这两个城市吗？"]),
    "es": ("El tren sale a las ocho de la mañana. ¿Vas a venir con nosotros al centro? ¡Claro que sí, amigo mío!",
           ["El tren sale a las ocho de la mañana.", "¿Vas a venir con nosotros al centro?",
            "¡Claro que sí, amigo mío!"]),
    "ar": ("القاهرة هي عاصمة مصر وأكبر مدنها من حيث السكان. يمر نهر النيل عبر المدينة من الجنوب إلى الشمال.",
           ["القاهرة هي عاصمة مصر وأكبر مدنها من حيث السكان.", "يمر نهر النيل عبر المدينة من الجنوب إلى الشمال."]),
    "en": ("See e.g. the manual for the details of the module. It is long. The 3 options are in section 2 below.",
           ["See e.g. the manual for the details of the module.", "The 3 options are in section 2 below."]),
}


@pytest.mark.parametrize("language", sorted(MULTILINGUAL))
def test_sentences_split_in_any_script_and_drops_are_counted(language):
    text, expected = MULTILINGUAL[language]
    counts = SplitCounts()
    assert split_sentences(text, counts=counts) == expected
    assert counts == ({"short_sentences": 1} if language == "en" else {})     # "It is long." (11 < 20)


def test_non_english_files_become_documents_and_every_drop_is_counted(tmp_path):
    path = tmp_path / "mixed.txt"
    texts = [MULTILINGUAL["zh"][0], MULTILINGUAL["fr"][0], "Une seule phrase ici, rien de plus.",
             "    indented = code()\n    more = code()\n\nTrop court. Encore."]
    path.write_text("\n---\n".join(texts), encoding="utf-8")
    counts = SplitCounts()
    docs = read_text_files([str(path)], counts=counts)
    assert docs == [MULTILINGUAL["zh"][1], MULTILINGUAL["fr"][1]]
    assert counts == {"documents_with_fewer_than_two_sentences": 2, "code_or_markup_paragraphs": 1,
                      "short_sentences": 2}     # "Trop court." and "Encore."


def test_multilingual_corpus_is_django_translations_split_by_language():
    # Reference: the human-readable .po source next to the compiled catalogue.
    po = open(os.path.join(django_dir(), "conf", "locale", "fr", "LC_MESSAGES", "django.po"), encoding="utf-8").read()
    french = re.search(r'\nmsgid "Enter a valid email address\."\nmsgstr "(.+)"\n', po).group(1)
    assert french in catalogue_messages("fr") and "Enter a valid email address." in catalogue_messages("en")
    docs = multilingual_documents(["fr", "ja"], messages_per_document=4)
    assert {language for language, _ in docs} == {"fr", "ja"}
    assert all(2 <= len(sentences) <= 4 for _, sentences in docs)
    japanese = [s for language, sentences in docs if language == "ja" for s in sentences]
    assert any("タイムゾーン" in s for s in japanese)
    assert word_count("東京は首都 and more") == 7 and word_count("Москва столица мира") == 3
    with pytest.raises(ValueError, match="no translation catalogue"):
        multilingual_documents(["xx_NOPE"])


def test_multilingual_pretraining_reports_accuracy_per_language(tmp_path):
    task = PretrainingTask(PretrainingTaskConfig(corpus="multilingual", languages=("fr", "zh_Hans"), lower_case=False,
                                                 eval_fraction=0.2, vocab_size=3000, target_words=20,
                                                 max_sequence_length=48, max_predictions_per_seq=8))
    result = run_task(task, task.trainer_config(epochs=1, steps_per_epoch=80, batch_size=16,
                                                          warmup_steps=5), str(tmp_path), verbose=0)
    data = result["data"]
    assert set(data["documents_by_language"]) == {"fr", "zh_Hans"}
    for language, pairs in task.eval_pairs_by_language.items():
        held_out = set(pairs["text_a"]) | set(pairs["text_b"])
        assert not held_out & (set(task.train_pairs["text_a"]) | set(task.train_pairs["text_b"])), language
    before, after = result["before"]["mlm_accuracy_by_language"], result["after"]["mlm_accuracy_by_language"]
    print("per-language MLM accuracy", before, after)
    assert set(after) == {"fr", "zh_Hans"} and sum(after.values()) > sum(before.values())
    # Each language's figure is the masked-token accuracy over exactly that language's held-out pairs.
    model = keras.saving.load_model(result["model_path"])
    for language in after:
        correct = total = 0.0
        for x, y, weight in pretraining_dataset(task.eval_pairs_by_language[language], task.tokenizer,
                                                task.data_config(), 16, shuffle=False, repeat=False,
                                                drop_remainder=False):
            predicted = np.argmax(np.asarray(model(x, training=False)["mlm"]), -1)
            correct += float(np.sum((predicted == y["mlm"].numpy()) * weight["mlm"].numpy()))
            total += float(np.sum(weight["mlm"].numpy()))
        assert after[language] == pytest.approx(correct / total, abs=1e-6)
    with pytest.raises(ValueError, match="applies to corpus 'multilingual' only"):
        PretrainingTaskConfig(languages=("fr",))
