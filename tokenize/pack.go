package tokenize

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"math/bits"
	"sort"

	"github.com/pltune/pltune/corpus"
)

// PackedRow is one row of training data holding one or more sequences side
// by side. SegmentIDs number the sequences 1, 2, … so that attention can be
// block-diagonal (a token attends only within its segment); PositionIDs
// restart at 0 with each segment. The first label of every segment is
// IgnoreIndex: after the model's shift it would be predicted from the
// previous segment's last token, so a packed row trains exactly what its
// sequences would train one by one. Rows are not padded; Collate pads them.
type PackedRow struct {
	IDs, Labels, PositionIDs, SegmentIDs []int
}

// Len is the number of tokens in the row.
func (r PackedRow) Len() int { return len(r.IDs) }

// Segments is the number of sequences in the row.
func (r PackedRow) Segments() int {
	if len(r.SegmentIDs) == 0 {
		return 0
	}
	return r.SegmentIDs[len(r.SegmentIDs)-1]
}

// appendSegment adds one sequence to the row as its next segment.
func (r *PackedRow) appendSegment(ids, labels []int) {
	seg := r.Segments() + 1
	at := len(r.IDs)
	r.IDs = append(r.IDs, ids...)
	r.Labels = append(r.Labels, labels...)
	if len(ids) > 0 {
		r.Labels[at] = IgnoreIndex
	}
	for i := range ids {
		r.PositionIDs = append(r.PositionIDs, i)
		r.SegmentIDs = append(r.SegmentIDs, seg)
	}
}

// Row returns s as a row of its own, for training without packing.
func (s Sequence) Row() PackedRow {
	var r PackedRow
	r.appendSegment(s.IDs, s.Labels)
	return r
}

// Pack places seqs into rows of at most rowLen tokens by best-fit decreasing:
// longest first, each into the fullest row that still has room, a new row
// when none has. No sequence is split. Rows come out in the order they were
// opened; the result depends only on the input.
func Pack(seqs []Sequence, rowLen int) ([]PackedRow, error) {
	if rowLen <= 0 {
		return nil, fmt.Errorf("tokenize: pack: row length %d must be positive", rowLen)
	}
	order := make([]int, len(seqs))
	for i, s := range seqs {
		switch {
		case len(s.IDs) != len(s.Labels):
			return nil, fmt.Errorf("tokenize: pack: sequence %d has %d ids and %d labels", i, len(s.IDs), len(s.Labels))
		case len(s.IDs) == 0:
			return nil, fmt.Errorf("tokenize: pack: sequence %d is empty", i)
		case len(s.IDs) > rowLen:
			return nil, fmt.Errorf("tokenize: pack: sequence %d has %d tokens, more than the row length %d", i, len(s.IDs), rowLen)
		}
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return len(seqs[order[a]].IDs) > len(seqs[order[b]].IDs) })

	var rows []PackedRow
	free := newFreeIndex(rowLen)
	for _, i := range order {
		n := len(seqs[i].IDs)
		r, ok := free.take(n)
		if !ok {
			r = len(rows)
			rows = append(rows, PackedRow{})
		}
		rows[r].appendSegment(seqs[i].IDs, seqs[i].Labels)
		if left := rowLen - rows[r].Len(); left > 0 {
			free.put(left, r)
		}
	}
	return rows, nil
}

// Rows turns seqs into training rows: packed into rows of at most rowLen
// tokens (Pack) when pack is set, else one row per sequence in the order of
// seqs, which rowLen does not limit (the builder that made them did).
func Rows(seqs []Sequence, rowLen int, pack bool) ([]PackedRow, error) {
	if pack {
		return Pack(seqs, rowLen)
	}
	rows := make([]PackedRow, len(seqs))
	for i, s := range seqs {
		rows[i] = s.Row()
	}
	return rows, nil
}

// freeIndex finds, among open rows, one with the least free room that is at
// least n: rows are kept in stacks by free room, and a bitset over room sizes
// finds the first non-empty stack at or above n in a few word operations.
type freeIndex struct {
	byRoom [][]int
	used   []uint64
}

func newFreeIndex(rowLen int) *freeIndex {
	return &freeIndex{byRoom: make([][]int, rowLen+1), used: make([]uint64, rowLen/64+1)}
}

func (f *freeIndex) put(room, row int) {
	f.byRoom[room] = append(f.byRoom[room], row)
	f.used[room/64] |= 1 << (room % 64)
}

func (f *freeIndex) take(n int) (int, bool) {
	w := n / 64
	word := f.used[w] &^ (1<<(n%64) - 1)
	for word == 0 {
		w++
		if w == len(f.used) {
			return 0, false
		}
		word = f.used[w]
	}
	room := w*64 + bits.TrailingZeros64(word)
	stack := f.byRoom[room]
	row := stack[0]
	f.byRoom[room] = stack[1:]
	if len(f.byRoom[room]) == 0 {
		f.used[room/64] &^= 1 << (room % 64)
	}
	return row, true
}

// PretrainOptions configure PretrainRows.
type PretrainOptions struct {
	// RowLen is the number of tokens of a row; required.
	RowLen int
	// EOSToken separates documents; "" means Tokenizer.DocumentEndToken
	// (the end-of-text token of Llama-3 and Qwen vocabularies, whose
	// eos_token ends a chat turn; else eos_token).
	EOSToken string
	// KeepLast emits the final, shorter row instead of dropping it.
	KeepLast bool
}

// PretrainRows turns raw documents into rows for continual pre-training.
// Each document is encoded with the tokenizer's special tokens (BOS when the
// tokenizer adds one) and followed by EOS; the documents are laid end to end
// and cut into rows of RowLen tokens, every token trained. A document that
// crosses a row boundary continues in the next row as a new segment; each
// document fragment is a segment with its own position ids, so attention
// can stay within documents. Cancelling ctx ends the sequence with ctx's
// error.
func PretrainRows(ctx context.Context, tok *Tokenizer, docs iter.Seq[string], opts PretrainOptions) iter.Seq2[PackedRow, error] {
	return pretrainRows(ctx, tok, func(yield func(string, error) bool) {
		for d := range docs {
			if !yield(d, nil) {
				return
			}
		}
	}, opts)
}

// PretrainRowsFrom is PretrainRows on documents read from files, such as
// corpus.ReadText's: a read error ends the rows with that error, as is.
func PretrainRowsFrom(ctx context.Context, tok *Tokenizer, docs iter.Seq2[corpus.Document, error], opts PretrainOptions) iter.Seq2[PackedRow, error] {
	return pretrainRows(ctx, tok, func(yield func(string, error) bool) {
		for d, err := range docs {
			if !yield(d.Text, err) {
				return
			}
		}
	}, opts)
}

func pretrainRows(ctx context.Context, tok *Tokenizer, docs iter.Seq2[string, error], opts PretrainOptions) iter.Seq2[PackedRow, error] {
	name := opts.EOSToken
	if name == "" {
		name = tok.DocumentEndToken()
	}
	eos, ok := tok.TokenToID(name)
	return func(yield func(PackedRow, error) bool) {
		switch {
		case opts.RowLen <= 0:
			yield(PackedRow{}, fmt.Errorf("tokenize: pretrain: row length %d must be positive", opts.RowLen))
			return
		case name == "":
			yield(PackedRow{}, errors.New("tokenize: pretrain: the tokenizer has no eos_token; set PretrainOptions.EOSToken"))
			return
		case !ok:
			yield(PackedRow{}, fmt.Errorf("tokenize: pretrain: EOS token %q is not in the vocabulary", name))
			return
		}
		packDocuments(ctx, tok, docs, eos, opts, yield)
	}
}

func packDocuments(ctx context.Context, enc encoder, docs iter.Seq2[string, error], eos int, opts PretrainOptions, yield func(PackedRow, error) bool) {
	var row PackedRow
	for doc, err := range docs {
		if err == nil {
			err = ctx.Err()
		}
		if err != nil {
			yield(PackedRow{}, err)
			return
		}
		ids := enc.Encode(doc, true)
		if len(ids) == 0 || ids[len(ids)-1] != eos {
			ids = append(ids, eos)
		}
		for len(ids) > 0 {
			n := min(len(ids), opts.RowLen-row.Len())
			row.appendSegment(ids[:n], ids[:n])
			ids = ids[n:]
			if row.Len() == opts.RowLen {
				if !yield(row, nil) {
					return
				}
				row = PackedRow{}
			}
		}
	}
	if opts.KeepLast && row.Len() > 0 {
		yield(row, nil)
	}
}
