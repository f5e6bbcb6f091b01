from hypothesis import given
from hypothesis import strategies as st

from gatedrag.lm.sentences import find_sentence_end, first_stop


def test_boundary_needs_following_whitespace():
    assert find_sentence_end("It was 1.5") is None
    assert find_sentence_end("It ended.") is None
    assert find_sentence_end("It ended. Then") == 9


def test_abbreviations_and_initials_do_not_end_sentences():
    assert find_sentence_end("Dr. Smith met J. K. Rowling in the U.S. Army. Later") == 45
    assert find_sentence_end("He lived in St. Louis. Then") == 22
    assert find_sentence_end("It reached No. 5 in the chart. Then") == 30
    assert find_sentence_end("So the answer is no. So") == 20


def test_newline_and_other_terminators():
    assert find_sentence_end("a line\nnext") == 7
    assert find_sentence_end('He asked "why?" and left') == 15
    assert find_sentence_end("Really! Yes") == 7


def test_first_stop_is_earliest():
    assert first_stop("abc\n\nQuestion: x", ("\nQuestion:", "\n\n")) == 3
    assert first_stop("abc", ("\n\n",)) is None


@given(st.text(alphabet="ab .!?\n", max_size=60))
def test_boundary_is_inside_text_and_after_terminator(text):
    end = find_sentence_end(text)
    if end is not None:
        assert 0 < end <= len(text)
        assert text[end - 1] in ".!?\n\"')]" or text[end - 1] == "\n"
