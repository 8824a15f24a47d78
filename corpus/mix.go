package corpus

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// MixOptions configures Mix.
type MixOptions struct {
	// Proportions is the target share of each origin in the mix; shares are
	// normalised to sum to 1. Nil keeps what the caps leave, in its natural
	// proportions. An origin missing from a non-nil map is left out.
	Proportions map[Origin]float64
	// Total is the number of samples wanted; 0 takes the largest mix that
	// meets Proportions from what the caps leave.
	Total int
	// SourceCap caps the samples taken from each source (a sample's first
	// source) per origin; an origin absent from the map is not capped.
	// DefaultMixOptions caps converted sources at 1,000, as PLLuMIC does.
	SourceCap map[Origin]int
	// Seed makes the choice of samples and their order reproducible.
	Seed uint64
}

// DefaultMixOptions caps each converted source at 1,000 samples, seed 1.
func DefaultMixOptions() MixOptions {
	return MixOptions{SourceCap: map[Origin]int{OriginConverted: 1000}, Seed: 1}
}

// MixLine is the report for one origin or source.
type MixLine struct {
	Key       string  `json:"key"`
	Available int     `json:"available"`
	Capped    int     `json:"capped"`  // dropped by the source cap
	Trimmed   int     `json:"trimmed"` // dropped to meet the proportions or total
	Taken     int     `json:"taken"`   // Available = Capped + Trimmed + Taken
	Share     float64 `json:"share"`   // of the mix, two decimals
}

// MixReport says what Mix took and dropped, by origin and by source.
type MixReport struct {
	Taken    int       `json:"taken"`
	Dropped  int       `json:"dropped"`
	ByOrigin []MixLine `json:"by_origin"`
	BySource []MixLine `json:"by_source"` // key "origin/source"
}

func firstSource(s *Sample) string {
	if len(s.Sources) == 0 {
		return none
	}
	return s.Sources[0]
}

// Mix draws a training mix from samples (several corpora appended): it caps
// each source, then takes from each origin its share of the total, choosing
// at random under opts.Seed, and returns the mix shuffled under the same
// seed. The same input and options give the same mix.
func Mix(samples []Sample, opts MixOptions) ([]Sample, *MixReport, error) {
	rng := rand.New(rand.NewPCG(opts.Seed, 0x6d6978))
	type group struct {
		origin, source string
		idx            []int
	}
	groups := map[[2]string]*group{}
	var keys [][2]string
	for i := range samples {
		k := [2]string{originKey(samples[i].Origin), firstSource(&samples[i])}
		g := groups[k]
		if g == nil {
			g = &group{origin: k[0], source: k[1]}
			groups[k] = g
			keys = append(keys, k)
		}
		g.idx = append(g.idx, i)
	}
	slices.SortFunc(keys, func(a, b [2]string) int { return cmp.Or(cmp.Compare(a[0], b[0]), cmp.Compare(a[1], b[1])) })

	srcLine := map[[2]string]*MixLine{}
	byOrigin := map[string][]int{}
	originLine := map[string]*MixLine{}
	for _, k := range keys {
		g := groups[k]
		rng.Shuffle(len(g.idx), func(i, j int) { g.idx[i], g.idx[j] = g.idx[j], g.idx[i] })
		line := &MixLine{Key: k[0] + "/" + k[1], Available: len(g.idx)}
		srcLine[k] = line
		if c, ok := opts.SourceCap[Origin(k[0])]; ok && c >= 0 && len(g.idx) > c {
			line.Capped = len(g.idx) - c
			g.idx = g.idx[:c]
		}
		byOrigin[k[0]] = append(byOrigin[k[0]], g.idx...)
		ol := originLine[k[0]]
		if ol == nil {
			ol = &MixLine{Key: k[0]}
			originLine[k[0]] = ol
		}
		ol.Available += line.Available
		ol.Capped += line.Capped
	}

	want, err := mixTargets(byOrigin, opts)
	if err != nil {
		return nil, nil, err
	}
	var out []Sample
	taken := map[int]bool{}
	for o, idx := range byOrigin {
		rng := rand.New(rand.NewPCG(opts.Seed, hashString(o)))
		rng.Shuffle(len(idx), func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
		n := want[o]
		for _, i := range idx[:n] {
			taken[i] = true
		}
		originLine[o].Taken = n
		originLine[o].Trimmed = len(idx) - n
	}
	for i := range samples {
		if taken[i] {
			out = append(out, samples[i])
			line := srcLine[[2]string{originKey(samples[i].Origin), firstSource(&samples[i])}]
			line.Taken++
		}
	}
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })

	rep := &MixReport{Taken: len(out), Dropped: len(samples) - len(out)}
	for _, l := range originLine {
		l.Share = percent(l.Taken, len(out))
		rep.ByOrigin = append(rep.ByOrigin, *l)
	}
	slices.SortFunc(rep.ByOrigin, func(a, b MixLine) int {
		return originOrder(Count{Key: a.Key}, Count{Key: b.Key})
	})
	for _, k := range keys {
		l := srcLine[k]
		l.Trimmed = l.Available - l.Capped - l.Taken
		l.Share = percent(l.Taken, len(out))
		rep.BySource = append(rep.BySource, *l)
	}
	return out, rep, nil
}

// mixTargets is the number of samples to take from each origin.
func mixTargets(avail map[string][]int, opts MixOptions) (map[string]int, error) {
	want := map[string]int{}
	if opts.Proportions == nil {
		total := 0
		for _, idx := range avail {
			total += len(idx)
		}
		if opts.Total > total {
			return nil, fmt.Errorf("corpus: mix: %d samples wanted, %d available after the caps", opts.Total, total)
		}
		shares := map[Origin]float64{}
		for o, idx := range avail {
			shares[Origin(o)] = float64(len(idx))
		}
		if opts.Total == 0 {
			for o, idx := range avail {
				want[o] = len(idx)
			}
			return want, nil
		}
		opts.Proportions = shares
	}
	var sum float64
	for o, p := range opts.Proportions {
		if p < 0 || math.IsNaN(p) || math.IsInf(p, 0) {
			return nil, fmt.Errorf("corpus: mix: proportion %g for %s; want a non-negative number", p, originKey(o))
		}
		if p > 0 && len(avail[originKey(o)]) == 0 {
			return nil, fmt.Errorf("corpus: mix: proportion %g for %s, but there are no %s samples", p, originKey(o), originKey(o))
		}
		sum += p
	}
	if sum == 0 {
		return nil, fmt.Errorf("corpus: mix: the proportions sum to 0")
	}
	total := opts.Total
	if total == 0 {
		total = math.MaxInt
		for o, p := range opts.Proportions {
			if p > 0 {
				total = min(total, int(float64(len(avail[originKey(o)]))*sum/p))
			}
		}
	}
	// Largest remainder keeps the counts summing exactly to total.
	type rem struct {
		o string
		r float64
	}
	var rems []rem
	got := 0
	for o, p := range opts.Proportions {
		exact := float64(total) * p / sum
		n := int(exact)
		want[originKey(o)] = n
		got += n
		rems = append(rems, rem{originKey(o), exact - float64(n)})
	}
	slices.SortFunc(rems, func(a, b rem) int { return cmp.Or(cmp.Compare(b.r, a.r), cmp.Compare(a.o, b.o)) })
	for i := 0; got < total && i < len(rems); i++ {
		want[rems[i].o]++
		got++
	}
	for o, n := range want {
		if n > len(avail[o]) {
			return nil, fmt.Errorf("corpus: mix: %s needs %d samples for its share of %d; %d are available after the caps", o, n, total, len(avail[o]))
		}
	}
	return want, nil
}

func hashString(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h = (h ^ uint64(s[i])) * 1099511628211
	}
	return h
}

// SplitOptions configures Split.
type SplitOptions struct {
	// Validation is the share of samples for validation, in [0, 1).
	Validation float64
	// Stratum names a sample's stratum; nil stratifies by origin and type.
	Stratum func(*Sample) string
	Seed    uint64
}

// Split divides samples into training and validation sets, taking the
// validation share from each stratum (rounded so that the overall count is
// round(Validation × len), strata with the largest remainders rounding up)
// so that both sets keep the corpus's composition. Samples keep their input
// order within each set; the same seed gives the same split.
func Split(samples []Sample, opts SplitOptions) (train, valid []Sample, err error) {
	if opts.Validation < 0 || opts.Validation >= 1 || math.IsNaN(opts.Validation) {
		return nil, nil, fmt.Errorf("corpus: split: validation share %g is not in [0, 1)", opts.Validation)
	}
	key := opts.Stratum
	if key == nil {
		key = func(s *Sample) string { return originKey(s.Origin) + "\x00" + s.Type }
	}
	strata := map[string][]int{}
	var names []string
	for i := range samples {
		k := key(&samples[i])
		if _, ok := strata[k]; !ok {
			names = append(names, k)
		}
		strata[k] = append(strata[k], i)
	}
	slices.Sort(names)
	total := int(math.Round(opts.Validation * float64(len(samples))))
	type rem struct {
		name string
		r    float64
	}
	quota := map[string]int{}
	var rems []rem
	got := 0
	for _, n := range names {
		exact := opts.Validation * float64(len(strata[n]))
		quota[n] = int(exact)
		got += quota[n]
		rems = append(rems, rem{n, exact - float64(quota[n])})
	}
	slices.SortStableFunc(rems, func(a, b rem) int { return cmp.Compare(b.r, a.r) })
	for i := 0; got < total && i < len(rems); i++ {
		quota[rems[i].name]++
		got++
	}
	isValid := make([]bool, len(samples))
	for _, n := range names {
		idx := slices.Clone(strata[n])
		rng := rand.New(rand.NewPCG(opts.Seed, hashString(n)))
		rng.Shuffle(len(idx), func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
		for _, i := range idx[:quota[n]] {
			isValid[i] = true
		}
	}
	for i := range samples {
		if isValid[i] {
			valid = append(valid, samples[i])
		} else {
			train = append(train, samples[i])
		}
	}
	return train, valid, nil
}
