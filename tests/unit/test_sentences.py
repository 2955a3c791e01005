"""The sentence rule of deep_pyramidion/data/sentences.py and the <q> marker round trip."""
from deep_pyramidion.data.sentences import join_sentences, split_marked, split_sentences


def test_split_sentences_rule():
    text = 'We use e.g. Fig. 3 of J. Smith. It works! Does it? "Yes." 2020 was odd. the end'
    assert split_sentences(text) == [
        "We use e.g. Fig. 3 of J. Smith.",
        "It works!",
        "Does it?",
        '"Yes."',
        "2020 was odd. the end",
    ]


def test_split_sentences_lowercased_tokenized_text():
    assert split_sentences("we study x . results in fig . 3 hold . done") == [
        "we study x .",
        "results in fig . 3 hold .",
        "done",
    ]


def test_marker_round_trip_and_literal_marker_removed():
    joined = join_sentences(["First  one.", "", "Has <q> inside.", "Last\tone."])
    assert joined == "First one. <q> Has inside. <q> Last one."
    assert split_marked(joined) == ["First one.", "Has inside.", "Last one."]
    # spacing a detokenizer may leave around the marker
    assert split_marked("a b.<q>c d. <q>  e") == ["a b.", "c d.", "e"]
