package tokenize

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"strings"
	"testing"

	"github.com/pltune/pltune/corpus"
)

// seqOfLen returns a sequence whose ids identify it (tag*1000 + position)
// and whose labels train every other token.
func seqOfLen(tag, n int) Sequence {
	s := Sequence{IDs: make([]int, n), Labels: make([]int, n)}
	for i := range n {
		s.IDs[i] = tag*1000 + i
		s.Labels[i] = IgnoreIndex
		if i%2 == 1 {
			s.Labels[i] = s.IDs[i]
		}
	}
	return s
}

// checkPacking verifies the invariants of Pack's output: every sequence
// appears exactly once and whole, positions restart per segment, segments
// count up from 1, rows fit, and labels are the sequence's own except the
// first of each segment.
func checkPacking(t *testing.T, seqs []Sequence, rows []PackedRow, rowLen int) {
	t.Helper()
	seen := make([]bool, len(seqs))
	for r, row := range rows {
		if row.Len() > rowLen || row.Len() == 0 {
			t.Fatalf("row %d has %d tokens (row length %d)", r, row.Len(), rowLen)
		}
		if len(row.Labels) != row.Len() || len(row.PositionIDs) != row.Len() || len(row.SegmentIDs) != row.Len() {
			t.Fatalf("row %d: field lengths differ", r)
		}
		for start := 0; start < row.Len(); {
			seg := row.SegmentIDs[start]
			if want := row.SegmentIDs[max(start-1, 0)] + 1; start > 0 && seg != want || start == 0 && seg != 1 {
				t.Fatalf("row %d: segment %d at %d, want %d", r, seg, start, want)
			}
			end := start
			for end < row.Len() && row.SegmentIDs[end] == seg {
				end++
			}
			i := row.IDs[start] / 1000
			if i < 0 || i >= len(seqs) || seen[i] {
				t.Fatalf("row %d: sequence %d missing or twice", r, i)
			}
			seen[i] = true
			s := seqs[i]
			if !slices.Equal(row.IDs[start:end], s.IDs) {
				t.Fatalf("row %d: sequence %d split or altered", r, i)
			}
			for j := start; j < end; j++ {
				if row.PositionIDs[j] != j-start {
					t.Fatalf("row %d: position %d at %d, want %d", r, row.PositionIDs[j], j, j-start)
				}
				want := s.Labels[j-start]
				if j == start {
					want = IgnoreIndex
				}
				if row.Labels[j] != want {
					t.Fatalf("row %d: label %d at %d, want %d", r, row.Labels[j], j, want)
				}
			}
			start = end
		}
	}
	for i, ok := range seen {
		if !ok {
			t.Fatalf("sequence %d not packed", i)
		}
	}
}

func TestPack(t *testing.T) {
	tests := []struct {
		name     string
		lens     []int
		rowLen   int
		wantRows int
	}{
		{"one", []int{5}, 8, 1},
		{"exact fits", []int{4, 4, 8, 2, 6}, 8, 3},
		// Best fit puts 3 into the 5-room row left by 3, not the fresh one.
		{"best fit", []int{5, 3, 3, 2}, 8, 2},
		{"first-fit decreasing would need more", []int{7, 6, 5, 4, 3, 2, 1}, 10, 3},
		{"all full rows", []int{10, 10, 10}, 10, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var seqs []Sequence
			for i, n := range tt.lens {
				seqs = append(seqs, seqOfLen(i, n))
			}
			rows, err := Pack(seqs, tt.rowLen)
			if err != nil {
				t.Fatal(err)
			}
			checkPacking(t, seqs, rows, tt.rowLen)
			if len(rows) != tt.wantRows {
				t.Errorf("%d rows, want %d", len(rows), tt.wantRows)
			}
		})
	}
}

func TestPackErrors(t *testing.T) {
	tests := []struct {
		name   string
		seqs   []Sequence
		rowLen int
		want   string
	}{
		{"too long", []Sequence{seqOfLen(0, 3), seqOfLen(1, 9)}, 8, "sequence 1 has 9 tokens"},
		{"empty", []Sequence{{}}, 8, "sequence 0 is empty"},
		{"labels", []Sequence{{IDs: []int{1, 2}, Labels: []int{1}}}, 8, "2 ids and 1 labels"},
		{"row length", []Sequence{seqOfLen(0, 1)}, 0, "row length 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Pack(tt.seqs, tt.rowLen); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func FuzzPack(f *testing.F) {
	f.Add([]byte{3, 1, 4, 1, 5, 9, 2, 6}, uint8(9))
	f.Add([]byte{16, 16, 1}, uint8(16))
	f.Fuzz(func(t *testing.T, lens []byte, rowLen uint8) {
		if rowLen == 0 || len(lens) > 200 {
			return
		}
		var seqs []Sequence
		for i, n := range lens {
			seqs = append(seqs, seqOfLen(i, int(n%rowLen)+1))
		}
		rows, err := Pack(seqs, int(rowLen))
		if err != nil {
			t.Fatal(err)
		}
		checkPacking(t, seqs, rows, int(rowLen))
		total := 0
		for _, s := range seqs {
			total += s.Len()
		}
		// Best fit decreasing never leaves two rows each at most half full.
		half := 0
		for _, r := range rows {
			if 2*r.Len() <= int(rowLen) {
				half++
			}
		}
		if half > 1 {
			t.Fatalf("%d rows at most half full", half)
		}
	})
}

func TestCollate(t *testing.T) {
	rows, err := Pack([]Sequence{seqOfLen(0, 3), seqOfLen(1, 2), seqOfLen(2, 4)}, 5)
	if err != nil {
		t.Fatal(err)
	}
	b := Collate(rows, 7)
	if len(b.IDs) != 2 {
		t.Fatalf("%d rows", len(b.IDs))
	}
	// Row 0 holds 4 tokens plus one pad, row 1 the sequences of 3 and 2.
	want := Batch{
		IDs:           [][]int{{2000, 2001, 2002, 2003, 7}, {0, 1, 2, 1000, 1001}},
		Labels:        [][]int{{IgnoreIndex, 2001, IgnoreIndex, 2003, IgnoreIndex}, {IgnoreIndex, 1, IgnoreIndex, IgnoreIndex, 1001}},
		PositionIDs:   [][]int{{0, 1, 2, 3, 0}, {0, 1, 2, 0, 1}},
		SegmentIDs:    [][]int{{1, 1, 1, 1, 0}, {1, 1, 1, 2, 2}},
		AttentionMask: [][]int{{1, 1, 1, 1, 0}, {1, 1, 1, 1, 1}},
	}
	for name, pair := range map[string][2][][]int{
		"ids": {b.IDs, want.IDs}, "labels": {b.Labels, want.Labels}, "positions": {b.PositionIDs, want.PositionIDs},
		"segments": {b.SegmentIDs, want.SegmentIDs}, "mask": {b.AttentionMask, want.AttentionMask},
	} {
		if !slices.EqualFunc(pair[0], pair[1], slices.Equal) {
			t.Errorf("%s = %v, want %v", name, pair[0], pair[1])
		}
	}

	unpacked := Collate([]PackedRow{seqOfLen(0, 2).Row(), seqOfLen(1, 3).Row()}, 0)
	if got := unpacked.AttentionMask[0]; !slices.Equal(got, []int{1, 1, 0}) {
		t.Errorf("unpacked mask %v", got)
	}
	if _, err := CollateTo(rows, 0, 3); err == nil {
		t.Error("CollateTo accepted a row longer than the length")
	}
	fixed, err := CollateTo(rows, 0, 8)
	if err != nil || len(fixed.IDs[1]) != 8 {
		t.Errorf("CollateTo(8): %v, %v", fixed.IDs, err)
	}
}

func TestPackDocuments(t *testing.T) {
	tok := newByteTokenizer()
	eos := 4 // <|end_of_text|> in testSpecials
	docs := []string{"abc", "defgh", "<|end_of_text|>", "ij"}
	collect := func(opts PretrainOptions) []PackedRow {
		var rows []PackedRow
		packDocuments(context.Background(), tok, withNoErrors(docs), eos, opts, func(r PackedRow, err error) bool {
			if err != nil {
				t.Fatal(err)
			}
			rows = append(rows, r)
			return true
		})
		return rows
	}
	rows := collect(PretrainOptions{RowLen: 7, KeepLast: true})
	var stream []string
	for _, r := range rows {
		stream = append(stream, tok.Decode(r.IDs, false))
	}
	// BOS + text + EOS per document; a document that already ends in EOS
	// gets no second one.
	want := "<|begin_of_text|>abc<|end_of_text|><|begin_of_text|>defgh<|end_of_text|><|begin_of_text|><|end_of_text|><|begin_of_text|>ij<|end_of_text|>"
	if got := strings.Join(stream, ""); got != want {
		t.Errorf("stream %q\nwant   %q", got, want)
	}
	for i, r := range rows[:len(rows)-1] {
		if r.Len() != 7 {
			t.Errorf("row %d has %d tokens", i, r.Len())
		}
	}
	if len(rows) != 3 || rows[2].Len() != 4 {
		t.Fatalf("%d rows, last of %d tokens; want 3 rows, last of 4", len(rows), rows[len(rows)-1].Len())
	}
	if got := rows[0].SegmentIDs; !slices.Equal(got, []int{1, 1, 1, 1, 1, 2, 2}) {
		t.Errorf("row 0 segments %v", got)
	}
	if got := rows[0].PositionIDs; !slices.Equal(got, []int{0, 1, 2, 3, 4, 0, 1}) {
		t.Errorf("row 0 positions %v", got)
	}
	if got := rows[0].Labels; !slices.Equal(got, []int{IgnoreIndex, rows[0].IDs[1], rows[0].IDs[2], rows[0].IDs[3], eos, IgnoreIndex, rows[0].IDs[6]}) {
		t.Errorf("row 0 labels %v", got)
	}
	if n := len(collect(PretrainOptions{RowLen: 7})); n != 2 {
		t.Errorf("without KeepLast %d rows, want 2", n)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var gotErr error
	packDocuments(ctx, tok, withNoErrors(docs), eos, PretrainOptions{RowLen: 6}, func(_ PackedRow, err error) bool {
		gotErr = err
		return false
	})
	if !errors.Is(gotErr, context.Canceled) {
		t.Errorf("cancelled: err = %v", gotErr)
	}
}

func ExamplePack() {
	seqs := []Sequence{
		{IDs: []int{1, 2, 3}, Labels: []int{IgnoreIndex, 2, 3}},
		{IDs: []int{4, 5, 6, 7, 8}, Labels: []int{IgnoreIndex, IgnoreIndex, 6, 7, 8}},
		{IDs: []int{9, 10}, Labels: []int{IgnoreIndex, 10}},
	}
	rows, err := Pack(seqs, 8)
	if err != nil {
		panic(err)
	}
	batch := Collate(rows, 0)
	for i := range batch.IDs {
		fmt.Println("ids      ", batch.IDs[i])
		fmt.Println("labels   ", batch.Labels[i])
		fmt.Println("positions", batch.PositionIDs[i])
		fmt.Println("segments ", batch.SegmentIDs[i])
		fmt.Println("mask     ", batch.AttentionMask[i])
	}
	// Output:
	// ids       [4 5 6 7 8 1 2 3]
	// labels    [-100 -100 6 7 8 -100 2 3]
	// positions [0 1 2 3 4 0 1 2]
	// segments  [1 1 1 1 1 2 2 2]
	// mask      [1 1 1 1 1 1 1 1]
	// ids       [9 10 0 0 0 0 0 0]
	// labels    [-100 10 -100 -100 -100 -100 -100 -100]
	// positions [0 1 0 0 0 0 0 0]
	// segments  [1 1 0 0 0 0 0 0]
	// mask      [1 1 0 0 0 0 0 0]
}

func TestPretrainRows(t *testing.T) {
	tok, err := trainedSmall(t).Tokenizer()
	if err != nil {
		t.Fatal(err)
	}
	docs := []string{"Stolicą Polski jest Warszawa.", "Zażółć gęślą jaźń.", "Kraków leży nad Wisłą."}
	eos, _ := tok.TokenToID(TrainedEOS)
	var want []int
	for _, d := range docs {
		want = append(append(want, tok.Encode(d, true)...), eos)
	}
	var got []int
	rows := 0
	for row, err := range PretrainRows(context.Background(), tok, slices.Values(docs), PretrainOptions{RowLen: 16, EOSToken: TrainedEOS, KeepLast: true}) {
		if err != nil {
			t.Fatal(err)
		}
		if rows++; row.Len() > 16 || !slices.Equal(row.Labels[1:], row.IDs[1:]) && row.Segments() == 1 {
			t.Fatalf("row %d: %d tokens, labels %v", rows, row.Len(), row.Labels)
		}
		got = append(got, row.IDs...)
	}
	if !slices.Equal(got, want) {
		t.Errorf("stream %v\nwant   %v", got, want)
	}
	if rows != (len(want)+15)/16 {
		t.Errorf("%d rows for %d tokens", rows, len(want))
	}

	for _, opts := range []PretrainOptions{{RowLen: 0}, {RowLen: 8, EOSToken: "<|nie_ma|>"}} {
		for _, err := range PretrainRows(context.Background(), tok, slices.Values(docs), opts) {
			if err == nil {
				t.Errorf("%+v: no error", opts)
			}
			break
		}
	}
}

// Rows packs only when asked; unpacked, every sequence is its own
// single-segment row, in order.
func TestRows(t *testing.T) {
	seqs := []Sequence{seqOfLen(0, 5), seqOfLen(1, 3), seqOfLen(2, 3), seqOfLen(3, 2)}
	packed, err := Rows(seqs, 8, true)
	if err != nil {
		t.Fatal(err)
	}
	checkPacking(t, seqs, packed, 8)
	if len(packed) != 2 {
		t.Errorf("packed into %d rows, want 2", len(packed))
	}
	plain, err := Rows(seqs, 8, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(plain) != len(seqs) {
		t.Fatalf("%d rows unpacked, want one per sequence (%d)", len(plain), len(seqs))
	}
	for i, r := range plain {
		if r.Segments() != 1 || !slices.Equal(r.IDs, seqs[i].IDs) || !slices.Equal(r.Labels, seqs[i].Labels) {
			t.Errorf("row %d = %v / %v, want sequence %d alone", i, r.IDs, r.SegmentIDs, i)
		}
	}
	if _, err := Rows([]Sequence{seqOfLen(0, 9)}, 8, true); err == nil {
		t.Error("packing a sequence longer than the row: no error")
	}
}

func withNoErrors(docs []string) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		for _, d := range docs {
			if !yield(d, nil) {
				return
			}
		}
	}
}

// PretrainRowsFrom gives the rows PretrainRows gives for the same texts,
// and ends with the reader's error, unchanged, at the bad line.
func TestPretrainRowsFrom(t *testing.T) {
	tok, err := trainedSmall(t).Tokenizer()
	if err != nil {
		t.Fatal(err)
	}
	text := "Stolicą Polski jest Warszawa.\n\nZażółć gęślą jaźń.\nDrugi wiersz.\n\nKraków leży nad Wisłą.\n"
	opts := PretrainOptions{RowLen: 16, EOSToken: TrainedEOS, KeepLast: true}
	var want []PackedRow
	docs := []string{"Stolicą Polski jest Warszawa.", "Zażółć gęślą jaźń.\nDrugi wiersz.", "Kraków leży nad Wisłą."}
	for r, err := range PretrainRows(context.Background(), tok, slices.Values(docs), opts) {
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, r)
	}
	read := func(in string) ([]PackedRow, error) {
		var out []PackedRow
		src := corpus.NewTextReader(strings.NewReader(in), "in.txt", corpus.PlainText).Documents(context.Background())
		for r, err := range PretrainRowsFrom(context.Background(), tok, src, opts) {
			if err != nil {
				return out, err
			}
			out = append(out, r)
		}
		return out, nil
	}
	got, err := read(text)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("%d rows, want %d", len(got), len(want))
	}
	for i := range got {
		if !slices.Equal(got[i].IDs, want[i].IDs) || !slices.Equal(got[i].SegmentIDs, want[i].SegmentIDs) {
			t.Errorf("row %d: %v, want %v", i, got[i].IDs, want[i].IDs)
		}
	}
	_, err = read(text + "\nZa\xbf\xf3\xb3\xe6\n")
	var re *corpus.RecordError
	if !errors.As(err, &re) || re.Line != 8 || !errors.Is(err, corpus.ErrInvalidUTF8) {
		t.Errorf("error %v; want the reader's *RecordError for line 8", err)
	}
}
