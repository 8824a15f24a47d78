package tokstore

import (
	"errors"
	"fmt"

	"github.com/pltune/pltune/tokenize"
)

// Rows is a store's training rows, produced on demand from a row number.
// It is what train.RowSource asks for.
type Rows interface {
	// Len is the number of rows.
	Len() int
	// Row returns row i (0 ≤ i < Len()).
	Row(i int) (tokenize.PackedRow, error)
	// Tokens is the number of tokens of row i, without reading it.
	Tokens(i int) int
	// Fingerprint identifies the rows: the stores' content and how rows
	// are cut, so a resumed run can tell it trains on the same rows.
	Fingerprint() string
}

// TextRows cuts a text store's token stream into rows of rowLen tokens, the
// last one shorter (tokenize.PretrainRows with KeepLast): every token is
// trained, and each document fragment is its own segment with position ids
// from 0, so attention stays within documents.
func TextRows(s *Store, rowLen int) (Rows, error) {
	if s.Type() != TypeText {
		return nil, fmt.Errorf("tokstore: %s holds %s data; rows cut from a token stream need a text store", s.Dir, s.Type())
	}
	if rowLen <= 0 {
		return nil, fmt.Errorf("tokstore: row length %d must be positive", rowLen)
	}
	return &textRows{s: s, rowLen: int64(rowLen)}, nil
}

type textRows struct {
	s      *Store
	rowLen int64
}

func (r *textRows) Fingerprint() string {
	return fmt.Sprintf("%s/text/%d", r.s.Fingerprint(), r.rowLen)
}

func (r *textRows) Len() int { return int((r.s.Tokens() + r.rowLen - 1) / r.rowLen) }

func (r *textRows) Tokens(i int) int {
	start := int64(i) * r.rowLen
	return int(min(start+r.rowLen, r.s.Tokens()) - start)
}

func (r *textRows) Row(i int) (tokenize.PackedRow, error) {
	if i < 0 || i >= r.Len() {
		return tokenize.PackedRow{}, fmt.Errorf("tokstore: row %d out of range [0, %d)", i, r.Len())
	}
	start := int64(i) * r.rowLen
	end := min(start+r.rowLen, r.s.Tokens())
	n := int(end - start)
	row := tokenize.PackedRow{
		IDs: make([]int, 0, n), Labels: make([]int, n),
		PositionIDs: make([]int, n), SegmentIDs: make([]int, n),
	}
	var err error
	if row.IDs, _, err = r.s.appendTokens(row.IDs, nil, start, end); err != nil {
		return tokenize.PackedRow{}, err
	}
	copy(row.Labels, row.IDs)
	// Walk the documents the row touches: each fragment is a segment.
	seg, t := 0, start
	for t < end {
		_, dEnd, err := r.s.docAround(t)
		if err != nil {
			return tokenize.PackedRow{}, err
		}
		seg++
		fEnd := min(dEnd, end)
		at := int(t - start)
		row.Labels[at] = tokenize.IgnoreIndex
		for k := at; k < int(fEnd-start); k++ {
			row.PositionIDs[k] = k - at
			row.SegmentIDs[k] = seg
		}
		t = fEnd
	}
	return row, nil
}

// ChatRows gives a chat store's sequences as rows: one per sequence, or,
// with pack, packed into rows of at most rowLen tokens by best-fit
// decreasing exactly as tokenize.Pack packs them. Packing needs only the
// sequences' lengths, read from the index once (8 bytes per sequence in
// memory); the tokens are read when a row is.
func ChatRows(s *Store, rowLen int, pack bool) (Rows, error) {
	if s.Type() != TypeChat {
		return nil, fmt.Errorf("tokstore: %s holds %s data; chat rows need a chat store", s.Dir, s.Type())
	}
	if !pack {
		return &chatRows{s: s}, nil
	}
	lengths := make([]int, s.Docs())
	for d := range lengths {
		n, err := s.DocLen(int64(d))
		if err != nil {
			return nil, err
		}
		lengths[d] = n
	}
	plan, err := tokenize.PackPlan(lengths, rowLen)
	if err != nil {
		return nil, fmt.Errorf("tokstore: %s: %w", s.Dir, err)
	}
	return &packedRows{s: s, plan: plan, lengths: lengths, rowLen: rowLen}, nil
}

type chatRows struct{ s *Store }

func (r *chatRows) Fingerprint() string { return r.s.Fingerprint() + "/chat" }

func (r *chatRows) Len() int { return int(r.s.Docs()) }

func (r *chatRows) Tokens(i int) int {
	n, _ := r.s.DocLen(int64(i))
	return n
}

func (r *chatRows) Row(i int) (tokenize.PackedRow, error) {
	var row tokenize.PackedRow
	err := appendSequence(r.s, &row, int64(i))
	return row, err
}

type packedRows struct {
	rowLen  int
	s       *Store
	plan    [][]int
	lengths []int
}

func (r *packedRows) Fingerprint() string {
	return fmt.Sprintf("%s/packed/%d", r.s.Fingerprint(), r.rowLen)
}

func (r *packedRows) Len() int { return len(r.plan) }

func (r *packedRows) Tokens(i int) int {
	n := 0
	for _, d := range r.plan[i] {
		n += r.lengths[d]
	}
	return n
}

func (r *packedRows) Row(i int) (tokenize.PackedRow, error) {
	if i < 0 || i >= len(r.plan) {
		return tokenize.PackedRow{}, fmt.Errorf("tokstore: row %d out of range [0, %d)", i, len(r.plan))
	}
	var row tokenize.PackedRow
	for _, d := range r.plan[i] {
		if err := appendSequence(r.s, &row, int64(d)); err != nil {
			return tokenize.PackedRow{}, err
		}
	}
	return row, nil
}

// appendSequence adds sequence d to row as its next segment, with the
// segment's first label ignored (see tokenize.PackedRow).
func appendSequence(s *Store, row *tokenize.PackedRow, d int64) error {
	ids, trained, err := s.Doc(d)
	if err != nil {
		return err
	}
	if len(ids) == 0 {
		return corruptf("%s: sequence %d is empty", s.Dir, d)
	}
	seg := 1
	if n := len(row.SegmentIDs); n > 0 {
		seg = row.SegmentIDs[n-1] + 1
	}
	for k, id := range ids {
		label := id
		if !trained[k] || k == 0 {
			label = tokenize.IgnoreIndex
		}
		row.IDs = append(row.IDs, id)
		row.Labels = append(row.Labels, label)
		row.PositionIDs = append(row.PositionIDs, k)
		row.SegmentIDs = append(row.SegmentIDs, seg)
	}
	return nil
}

// OpenRows opens the rows of a store of either type: text stores are cut
// into rows of rowLen, chat stores give one row per sequence or, with
// pack, packed rows of at most rowLen.
func OpenRows(s *Store, rowLen int, pack bool) (Rows, error) {
	switch s.Type() {
	case TypeText:
		return TextRows(s, rowLen)
	case TypeChat:
		return ChatRows(s, rowLen, pack)
	}
	return nil, errors.New("tokstore: unknown store type")
}
