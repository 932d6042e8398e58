"""Export of an extractive QA model (``SpanQuestionAnswerer``).

``answer_question`` (``question``, ``context``: UTF-8 strings) -> ``answer``, character
``start``/``end``, ``score``, ``probability``: sliding windows, the model and span decoding in one
graph. Bad input (no context, an over-long question or context) fails the request with the reason,
which TF Serving reports as INVALID_ARGUMENT. Pipeline-trained models (a Transform output) also
get ``transform_features`` and ``serving_default`` on serialized raw (question, context, answer,
answer_start) examples -> ``span_exact_match`` (1 when the decoded span is the answer's words),
what the pipeline's TFMA gate scores.
"""
from __future__ import annotations

from typing import Dict

import tensorflow as tf

from rw_tf.applications.question_answering import answer_questions, windows_exact_match
from rw_tf.config import checks_number_arguments
from rw_tf.data.qa_windows import WindowSpec
from rw_tf.export.base import ExportModule, Signature


@checks_number_arguments()
class QuestionAnsweringExport(ExportModule):
    """Serving module of a ``SpanQuestionAnswerer`` with its window geometry ``spec``."""

    raw_signature = "answer_question"

    def __init__(self, model, tokenizer, spec: WindowSpec, max_answer_length: int, transform_output=None) -> None:
        super().__init__(model, tokenizer, spec.max_sequence_length, transform_output=transform_output)
        self.spec, self.max_answer_length = spec, int(max_answer_length)

    def signature_fns(self) -> Dict[str, Signature]:
        return {"answer_question": (self.answer_question, [tf.TensorSpec([None], tf.string, name="question"),
                                                           tf.TensorSpec([None], tf.string, name="context")])}

    def answer_question(self, question: tf.Tensor, context: tf.Tensor) -> Dict[str, tf.Tensor]:
        return answer_questions(self.model, self.tokenizer, question, context, self.spec, self.max_answer_length)

    def score_examples(self, examples: tf.Tensor) -> Dict[str, tf.Tensor]:
        return {"span_exact_match": windows_exact_match(self.model, self.transform(examples), self.max_answer_length)}
