package tokstore

import (
	"fmt"

	"github.com/pltune/pltune/tokenize"
)

// SplitHeldOut splits src's rows as tokenize.NewHeldOut(src.Len(), frac,
// seed) does, into views of src that read no row until asked and keep no
// index list; held is nil when nothing is held out.
func SplitHeldOut(src Rows, frac float64, seed int64) (train, held Rows) {
	s := tokenize.NewHeldOut(src.Len(), frac, seed)
	if s.Held() == 0 {
		return src, nil
	}
	tag := fmt.Sprintf("held-out %g seed %d", frac, seed)
	return &heldOutRows{src: src, n: s.Train(), index: s.TrainIndex, tag: "train of " + tag},
		&heldOutRows{src: src, n: s.Held(), index: s.HeldIndex, tag: tag}
}

// heldOutRows are rows index(0..n-1) of src.
type heldOutRows struct {
	src   Rows
	n     int
	index func(int) int
	tag   string
}

func (r *heldOutRows) Len() int { return r.n }

func (r *heldOutRows) Row(i int) (tokenize.PackedRow, error) {
	if i < 0 || i >= r.n {
		return tokenize.PackedRow{}, fmt.Errorf("tokstore: row %d out of range [0, %d)", i, r.n)
	}
	return r.src.Row(r.index(i))
}

func (r *heldOutRows) Tokens(i int) int { return r.src.Tokens(r.index(i)) }

func (r *heldOutRows) Fingerprint() string {
	return fmt.Sprintf("%s[%s]", r.src.Fingerprint(), r.tag)
}
