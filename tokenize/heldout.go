package tokenize

import (
	"math"
	"sort"
)

// HeldOut says which of n training items (rows, pairs) are held out to
// measure the loss on data the model does not train on. Held is
// max(1, ⌊frac·n⌋) items, none when frac ≤ 0 or n < 2, and never all of
// them; they are spread evenly over the items at a phase the seed picks,
// so that no stretch of the data (the last file, say) supplies them all.
// The split is a pure function of n, frac and seed, so a resumed run holds
// out the same items, and it needs no index list: a store of any size is
// split in constant memory.
type HeldOut struct {
	n, h int
	off  int // held item j is (j·n + off) / h
}

// NewHeldOut splits n items (see HeldOut).
func NewHeldOut(n int, frac float64, seed int64) HeldOut {
	if n < 2 || !(frac > 0) {
		return HeldOut{n: n}
	}
	h := max(1, min(n-1, int(math.Floor(frac*float64(n)+1e-9))))
	return HeldOut{n: n, h: h, off: int(splitmix64(uint64(seed)) % uint64(n))}
}

// Held is the number of held-out items.
func (s HeldOut) Held() int { return s.h }

// Train is the number of training items.
func (s HeldOut) Train() int { return s.n - s.h }

// HeldIndex is the index of the j-th held-out item (0 ≤ j < Held()), in
// increasing order.
func (s HeldOut) HeldIndex(j int) int { return (j*s.n + s.off) / s.h }

// heldBefore counts the held-out items with an index below i.
func (s HeldOut) heldBefore(i int) int {
	if s.h == 0 {
		return 0
	}
	// (j·n + off) / h < i  ⟺  j·n + off < i·h  ⟺  j < (i·h − off) / n.
	x := i*s.h - s.off
	if x <= 0 {
		return 0
	}
	return min(s.h, (x+s.n-1)/s.n)
}

// IsHeld tells whether item i is held out.
func (s HeldOut) IsHeld(i int) bool { return s.heldBefore(i+1) > s.heldBefore(i) }

// TrainIndex is the index of the t-th training item (0 ≤ t < Train()), in
// increasing order.
func (s HeldOut) TrainIndex(t int) int {
	// The smallest i with t+1 training items in [0, i]; it lies in
	// [t, t+Held()].
	return t + sort.Search(s.h+1, func(k int) bool {
		i := t + k
		return i+1-s.heldBefore(i+1) >= t+1
	})
}

// SplitHeldOut splits items as NewHeldOut(len(items), frac, seed) does,
// both parts in their original order.
func SplitHeldOut[T any](items []T, frac float64, seed int64) (train, held []T) {
	s := NewHeldOut(len(items), frac, seed)
	if s.h == 0 {
		return items, nil
	}
	train = make([]T, 0, s.Train())
	held = make([]T, 0, s.h)
	for i, it := range items {
		if s.IsHeld(i) {
			held = append(held, it)
		} else {
			train = append(train, it)
		}
	}
	return train, held
}

// splitmix64 spreads neighbouring seeds over the whole range.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}
