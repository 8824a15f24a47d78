package eval

import "math"

// The aggregations a metric's items combine by.
const (
	aggMean    = "mean"
	aggF1      = "f1"
	aggF1Macro = "f1_macro"
	aggPer1000 = "per1000" // findings per 1,000 words
)

// obs is one item's part in a metric: its score (mean), its gold and
// predicted class (F1), or its findings and words (per1000).
type obs struct {
	id   string
	x, y float64
}

// series is a metric's items and how they aggregate; standard errors and
// paired tests are computed on it.
type series struct {
	key string
	agg string
	obs []obs
}

// seriesOf collects items' parts in metric key (for F1: the items with a
// gold class; for per1000: those with a style count), keeping those keep
// accepts (nil keeps all).
func seriesOf(items []ItemResult, agg, key string, keep func(*ItemResult) bool) series {
	s := series{key: key, agg: agg}
	for i := range items {
		it := &items[i]
		if keep != nil && !keep(it) {
			continue
		}
		switch agg {
		case aggF1, aggF1Macro:
			if it.Gold != nil && it.Pred != nil {
				s.obs = append(s.obs, obs{it.ID, float64(*it.Gold), float64(*it.Pred)})
			}
		case aggPer1000:
			if it.StyleFindings != nil && it.StyleWords != nil {
				s.obs = append(s.obs, obs{it.ID, float64(*it.StyleFindings), float64(*it.StyleWords)})
			}
		default:
			if v, ok := it.Scores[key]; ok {
				s.obs = append(s.obs, obs{it.ID, v, 0})
			}
		}
	}
	return s
}

// stat aggregates the items at idx (with repeats, for the bootstrap).
func (s *series) stat(idx []int) float64 {
	switch s.agg {
	case aggF1, aggF1Macro:
		g, p := make([]int, len(idx)), make([]int, len(idx))
		for k, i := range idx {
			g[k], p[k] = int(s.obs[i].x), int(s.obs[i].y)
		}
		if s.agg == aggF1 {
			return F1(g, p)
		}
		return MacroF1(g, p)
	case aggPer1000:
		f, w := 0.0, 0.0
		for _, i := range idx {
			f, w = f+s.obs[i].x, w+s.obs[i].y
		}
		if w == 0 {
			return 0
		}
		return 1000 * f / w
	}
	if len(idx) == 0 {
		return 0
	}
	sum := 0.0
	for _, i := range idx {
		sum += s.obs[i].x
	}
	return sum / float64(len(idx))
}

func (s *series) all() []int {
	idx := make([]int, len(s.obs))
	for i := range idx {
		idx[i] = i
	}
	return idx
}

// stderr is the harness's standard error for the aggregation: mean_stderr
// for means, a bootstrap for the rest.
func (s *series) stderr() (float64, string) {
	if s.agg == aggMean {
		xs := make([]float64, len(s.obs))
		for i, o := range s.obs {
			xs[i] = o.x
		}
		return MeanStderr(xs), "mean"
	}
	return BootstrapStderr(len(s.obs), BootstrapIters, s.stat), "bootstrap"
}

func (s *series) binary() bool {
	if s.agg != aggMean {
		return false
	}
	for _, o := range s.obs {
		if o.x != 0 && o.x != 1 {
			return false
		}
	}
	return true
}

func (s series) metricValue() MetricValue {
	se, method := s.stderr()
	return MetricValue{Name: s.key, Value: s.stat(s.all()), Stderr: se, StderrMethod: method, Aggregation: s.agg, N: len(s.obs)}
}

// PairedTest is the outcome of a paired significance test between two runs.
type PairedTest struct {
	// Method is "mcnemar-exact", "mcnemar-chi2" or "paired-bootstrap".
	Method string  `json:"method"`
	P      float64 `json:"p"`
	// N is the number of items both runs answered.
	N int `json:"n"`
	// Discordant counts items only one run got right (McNemar): B right
	// and A wrong in BWins, the reverse in AWins.
	AWins int `json:"a_wins,omitempty"`
	BWins int `json:"b_wins,omitempty"`
}

// pairedTest pairs a's and b's items by id and tests the difference.
func pairedTest(a, b *series) *PairedTest {
	bi := map[string]int{}
	for i, o := range b.obs {
		bi[o.id] = i
	}
	pa, pb := series{key: a.key, agg: a.agg}, series{key: b.key, agg: b.agg}
	for _, o := range a.obs {
		if j, ok := bi[o.id]; ok {
			pa.obs = append(pa.obs, o)
			pb.obs = append(pb.obs, b.obs[j])
		}
	}
	n := len(pa.obs)
	if n == 0 {
		return nil
	}
	if pa.binary() && pb.binary() {
		aw, bw := 0, 0
		for i := range pa.obs {
			switch {
			case pa.obs[i].x > pb.obs[i].x:
				aw++
			case pb.obs[i].x > pa.obs[i].x:
				bw++
			}
		}
		p, method := McNemar(aw, bw)
		return &PairedTest{Method: method, P: p, N: n, AWins: aw, BWins: bw}
	}
	p := PairedBootstrap(n, BootstrapIters, pa.stat, pb.stat)
	if math.IsNaN(p) {
		p = 1
	}
	return &PairedTest{Method: "paired-bootstrap", P: p, N: n}
}
