"""Text sources, tokenizers and the token streams of truncated BPTT."""

import numpy as np
import pytest
import torch

from seqlab.data import DataError, Decoder, Streams, encode_corpus, load_tokenizer, open_source, train_tokenizer

DOCS = ["héllo wörld — naïve café 日本語\n", "def f(x):\n    return x + 1  # ok\n"] * 10


@pytest.mark.parametrize("kind", ["char", "word", "bpe"])
def test_tokenizers_round_trip_stream_and_save(kind, tmp_path):
    tok = train_tokenizer(kind, lambda: iter(DOCS), 300)
    text = "héllo café 日本語\n    return x"
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    decode = Decoder(tok)
    pieces = [decode(i) for i in ids]
    assert "".join(pieces) == text  # a character split across byte-level tokens waits for its other bytes
    tok.save(tmp_path / "tok.json")
    again = load_tokenizer(tmp_path / "tok.json")
    assert again.encode(text) == ids and again.vocab_size == tok.vocab_size


def test_char_tokenizer_refuses_unknown_characters_by_name():
    tok = train_tokenizer("char", lambda: iter(["abc"]), 0)
    with pytest.raises(DataError, match=r"characters not in the vocabulary: 'xé'"):
        tok.encode("abxéa")


def test_word_tokenizer_keeps_whitespace_and_maps_rare_words_to_unk():
    tok = train_tokenizer("word", lambda: iter(["the cat  sat on the mat\n"] * 3 + ["zebra"]), 9)
    assert tok.decode(tok.encode("the  cat\n")) == "the  cat\n"
    assert tok.encode("zebra") == [0]  # the 9th most frequent did not make it: <unk>
    assert tok.words == train_tokenizer("word", lambda: iter(["zebra"] + ["the cat  sat on the mat\n"] * 3), 9).words


def test_bpe_tokenizer_encodes_any_text():
    tok = train_tokenizer("bpe", lambda: iter(["plain ascii only\n"] * 5), 270)
    text = "Ünïcödé ✓ never seen"
    assert tok.decode(tok.encode(text)) == text


def test_sources_file_directory_glob_and_builtin(tmp_path):
    (tmp_path / "a.txt").write_text("alpha\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.txt").write_text("beta\n")
    (tmp_path / "sub" / "c.md").write_text("gamma\n")
    (tmp_path / ".hidden").write_text("secret\n")
    assert list(open_source(str(tmp_path), "**/*.txt").documents()) == ["alpha\n", "beta\n"]
    assert list(open_source(str(tmp_path)).documents()) == ["alpha\n", "beta\n", "gamma\n"]
    assert list(open_source(str(tmp_path / "a.txt")).documents()) == ["alpha\n"]
    pydoc = open_source("pydoc")
    assert sum(len(d) for d in pydoc.documents()) > 100_000
    assert pydoc.sha256() == open_source("pydoc").sha256()


def test_bad_sources_name_the_file_and_the_byte(tmp_path):
    (tmp_path / "bad.txt").write_bytes("ok ünicode".encode() + b" \xff\xfe tail")
    with pytest.raises(DataError, match=r"bad.txt: not UTF-8 at byte offset 12 .*--encoding-errors replace"):
        list(open_source(str(tmp_path / "bad.txt")).documents())
    assert "\ufffd" in next(open_source(str(tmp_path / "bad.txt"), errors="replace").documents())
    (tmp_path / "bin.dat").write_bytes(b"GIF89a\x00\x01")
    with pytest.raises(DataError, match=r"bin.dat: looks binary \(NUL byte at offset 6\)"):
        list(open_source(str(tmp_path / "bin.dat")).documents())
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no files match"):
        open_source(str(tmp_path / "empty"))
    with pytest.raises(DataError, match="no such file or directory"):
        open_source(str(tmp_path / "missing.txt"))
    (tmp_path / "blank.txt").write_text("")
    tok = train_tokenizer("char", lambda: iter(["ab"]), 0)
    with pytest.raises(DataError, match="no text in the corpus"):
        encode_corpus(open_source(str(tmp_path / "blank.txt")), tok, tmp_path, 0.1)


def test_streams_continue_each_stream_and_targets_lead_by_one():
    ids = np.arange(1000) % 251
    s = Streams(ids, 0, 1000, B=4, T=10)
    x0, y0, reset0 = s.window(0)
    x1, _, reset1 = s.window(1)
    assert reset0 and not reset1
    assert torch.equal(y0[:, :-1], x0[:, 1:])
    assert torch.equal(x1[:, 0], y0[:, -1])  # window 1 picks up where window 0's targets ended
    whole = torch.cat([s.window(k)[0] for k in range(s.windows)], 1)  # (B, windows * T)
    for i in range(4):
        start = int(s.starts[i])
        assert torch.equal(whole[i], torch.from_numpy(ids[start : start + s.windows * 10]).long())
    assert torch.equal(s.window(s.windows)[0], x0) and s.window(s.windows)[2]  # wraps, and resets the state
    with pytest.raises(DataError, match="fewer than batch x seq_len"):
        Streams(ids, 0, 30, B=4, T=10)


def test_encode_corpus_splits_off_a_contiguous_tail(tmp_path):
    (tmp_path / "t.txt").write_text("abcdefghij" * 10)
    src = open_source(str(tmp_path / "t.txt"))
    tok = train_tokenizer("char", src.documents, 0)
    tf = encode_corpus(src, tok, tmp_path, 0.2)
    assert (tf.n, tf.split, tf.val_chars) == (100, 80, 20)
    assert tok.decode(tf.array()[80:].tolist()) == ("abcdefghij" * 10)[80:]
