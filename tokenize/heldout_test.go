package tokenize

import (
	"fmt"
	"slices"
	"testing"
)

func TestHeldOut(t *testing.T) {
	for _, n := range []int{0, 1, 2, 3, 19, 20, 21, 100, 997, 5000} {
		for _, frac := range []float64{0, 0.05, 0.1, 0.5, 0.999, 1} {
			for _, seed := range []int64{0, 1, 42, -7} {
				name := fmt.Sprintf("n%d/frac%g/seed%d", n, frac, seed)
				s := NewHeldOut(n, frac, seed)
				want := 0
				if n >= 2 && frac > 0 {
					want = max(1, min(n-1, int(frac*float64(n)+1e-9)))
				}
				if s.Held() != want || s.Train() != n-want {
					t.Fatalf("%s: %d held, %d train; want %d held", name, s.Held(), s.Train(), want)
				}
				var held, train []int
				for i := range n {
					if s.IsHeld(i) {
						held = append(held, i)
					} else {
						train = append(train, i)
					}
				}
				if len(held) != s.Held() {
					t.Fatalf("%s: IsHeld marks %d items, Held() is %d", name, len(held), s.Held())
				}
				for j, i := range held {
					if got := s.HeldIndex(j); got != i {
						t.Fatalf("%s: HeldIndex(%d) = %d, want %d", name, j, got, i)
					}
				}
				for j, i := range train {
					if got := s.TrainIndex(j); got != i {
						t.Fatalf("%s: TrainIndex(%d) = %d, want %d", name, j, got, i)
					}
				}
				// Spread: no gap between held items (or before the first,
				// around the end) is longer than an even stride allows.
				if len(held) > 0 {
					stride := (n + len(held) - 1) / len(held)
					gaps := []int{held[0] + n - held[len(held)-1]}
					for j := 1; j < len(held); j++ {
						gaps = append(gaps, held[j]-held[j-1])
					}
					if g := slices.Max(gaps); g > stride+1 {
						t.Errorf("%s: held-out items %v leave a gap of %d, stride %d", name, abbrevInts(held), g, stride)
					}
				}
			}
		}
	}
}

func abbrevInts(xs []int) []int {
	if len(xs) > 12 {
		return xs[:12]
	}
	return xs
}

// The seed moves the held-out items; the same seed gives the same split;
// SplitHeldOut keeps both parts in order.
func TestSplitHeldOut(t *testing.T) {
	items := make([]int, 200)
	for i := range items {
		items[i] = i
	}
	tr, held := SplitHeldOut(items, 0.05, 1)
	tr2, held2 := SplitHeldOut(items, 0.05, 1)
	if len(held) != 10 || len(tr) != 190 || !slices.Equal(held, held2) || !slices.Equal(tr, tr2) {
		t.Fatalf("split %d/%d, again %d/%d; want 190/10 twice the same", len(tr), len(held), len(tr2), len(held2))
	}
	if !slices.IsSorted(tr) || !slices.IsSorted(held) {
		t.Error("the parts are not in the items' order")
	}
	if held[len(held)-1] < 150 || held[0] >= 50 {
		t.Errorf("held-out items %v are not spread over the data", held)
	}
	phases := map[int]bool{}
	for seed := range int64(8) {
		_, h := SplitHeldOut(items, 0.05, seed)
		phases[h[0]] = true
	}
	if len(phases) < 4 {
		t.Errorf("8 seeds give %d different splits; the seed should move the held-out items", len(phases))
	}
	if tr, held := SplitHeldOut(items[:1], 0.5, 1); len(tr) != 1 || held != nil {
		t.Errorf("one item: %v / %v; want it trained", tr, held)
	}
}
