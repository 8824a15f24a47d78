package tokenize

import "fmt"

// Batch is a list of rows padded on the right to one length, the layout a
// training step takes. AttentionMask is 1 on tokens and 0 on padding;
// padding has IgnoreIndex labels, position 0 and segment 0.
type Batch struct {
	IDs, Labels, PositionIDs, SegmentIDs, AttentionMask [][]int
}

// Collate pads rows on the right with padID to the length of the longest.
// Unpacked sequences take part through Sequence.Row.
func Collate(rows []PackedRow, padID int) Batch {
	n := 0
	for _, r := range rows {
		n = max(n, r.Len())
	}
	b, _ := CollateTo(rows, padID, n)
	return b
}

// CollateTo pads rows on the right with padID to exactly length tokens, for
// a fixed batch shape; a longer row is an error.
func CollateTo(rows []PackedRow, padID, length int) (Batch, error) {
	b := Batch{
		IDs:           make([][]int, len(rows)),
		Labels:        make([][]int, len(rows)),
		PositionIDs:   make([][]int, len(rows)),
		SegmentIDs:    make([][]int, len(rows)),
		AttentionMask: make([][]int, len(rows)),
	}
	for i, r := range rows {
		if r.Len() > length {
			return Batch{}, fmt.Errorf("tokenize: collate: row %d has %d tokens, more than %d", i, r.Len(), length)
		}
		b.IDs[i] = padded(r.IDs, length, padID)
		b.Labels[i] = padded(r.Labels, length, IgnoreIndex)
		b.PositionIDs[i] = padded(r.PositionIDs, length, 0)
		b.SegmentIDs[i] = padded(r.SegmentIDs, length, 0)
		mask := make([]int, length)
		for j := range r.Len() {
			mask[j] = 1
		}
		b.AttentionMask[i] = mask
	}
	return b, nil
}

func padded(s []int, n, pad int) []int {
	out := make([]int, n)
	copy(out, s)
	for i := len(s); i < n; i++ {
		out[i] = pad
	}
	return out
}
