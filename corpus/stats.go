package corpus

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"iter"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// TokenCounter counts the tokens of a text; a tokenizer supplies it, so that
// corpus does not depend on tokenize.
type TokenCounter interface {
	CountTokens(string) int
}

// Count is one row of a composition table.
type Count struct {
	Key     string  `json:"key"`
	Count   int     `json:"count"`
	Percent float64 `json:"percent"` // of all samples, two decimals
}

// Distribution summarises a per-sample quantity.
type Distribution struct {
	Total  int64   `json:"total"`
	Min    int     `json:"min"`
	Max    int     `json:"max"`
	Mean   float64 `json:"mean"`
	Median int     `json:"median"`
	P90    int     `json:"p90"`
}

// Stats is a corpus's composition, as in the PLLuMIC paper's table: samples
// by origin, by task type (overall and per origin), by source, by number of
// turns, and the length of samples in characters and, when a TokenCounter
// was given, tokens. A sample with several sources counts once under each,
// so BySource may sum to more than Samples. Samples without an origin count
// as "unknown", without a type or source as "(none)".
type Stats struct {
	Samples      int                `json:"samples"`
	ByOrigin     []Count            `json:"by_origin"`
	ByType       []Count            `json:"by_type"`
	TypeByOrigin map[string][]Count `json:"type_by_origin"`
	BySource     []Count            `json:"by_source"`
	ByTurns      []Count            `json:"by_turns"` // key: user/assistant exchanges
	Chars        Distribution       `json:"chars"`
	Tokens       *Distribution      `json:"tokens,omitempty"`
}

// StatsBuilder accumulates Stats one sample at a time; memory grows with the
// number of distinct keys plus 8 bytes per sample for the medians.
type StatsBuilder struct {
	counter TokenCounter
	n       int
	origin  map[string]int
	typ     map[string]int
	typOrig map[[2]string]int
	source  map[string]int
	turns   map[int]int
	chars   []int32
	tokens  []int32
}

// NewStatsBuilder returns a builder; counter may be nil.
func NewStatsBuilder(counter TokenCounter) *StatsBuilder {
	return &StatsBuilder{counter: counter, origin: map[string]int{}, typ: map[string]int{},
		typOrig: map[[2]string]int{}, source: map[string]int{}, turns: map[int]int{}}
}

const none = "(none)"

func originKey(o Origin) string {
	if o == OriginUnknown {
		return "unknown"
	}
	return string(o)
}

// Add counts one sample.
func (b *StatsBuilder) Add(s *Sample) {
	b.n++
	o := originKey(s.Origin)
	b.origin[o]++
	t := cmp.Or(s.Type, none)
	b.typ[t]++
	b.typOrig[[2]string{o, t}]++
	if len(s.Sources) == 0 {
		b.source[none]++
	}
	for _, src := range s.Sources {
		b.source[src]++
	}
	b.turns[(len(s.Messages)+1)/2]++
	chars := utf8.RuneCountInString(s.System)
	for _, m := range s.Messages {
		chars += utf8.RuneCountInString(m.Content)
	}
	b.chars = append(b.chars, int32(min(chars, math.MaxInt32)))
	if b.counter != nil {
		tok := 0
		if s.System != "" {
			tok = b.counter.CountTokens(s.System)
		}
		for _, m := range s.Messages {
			tok += b.counter.CountTokens(m.Content)
		}
		b.tokens = append(b.tokens, int32(min(tok, math.MaxInt32)))
	}
}

// originOrder puts the paper's origins first, then any others by name.
func originOrder(a, b Count) int {
	rank := func(k string) int {
		switch k {
		case string(OriginOrganic):
			return 0
		case string(OriginConverted):
			return 1
		case string(OriginSynthetic):
			return 2
		}
		return 3
	}
	return cmp.Or(cmp.Compare(rank(a.Key), rank(b.Key)), strings.Compare(a.Key, b.Key))
}

func byCount(a, b Count) int {
	return cmp.Or(cmp.Compare(b.Count, a.Count), strings.Compare(a.Key, b.Key))
}

func (b *StatsBuilder) counts(m map[string]int, order func(a, b Count) int) []Count {
	out := make([]Count, 0, len(m))
	for k, v := range m {
		out = append(out, Count{Key: k, Count: v, Percent: percent(v, b.n)})
	}
	slices.SortFunc(out, order)
	return out
}

func percent(v, n int) float64 {
	if n == 0 {
		return 0
	}
	return math.Round(float64(v)*10000/float64(n)) / 100
}

func distribution(v []int32) Distribution {
	if len(v) == 0 {
		return Distribution{}
	}
	s := slices.Clone(v)
	slices.Sort(s)
	var total int64
	for _, x := range s {
		total += int64(x)
	}
	return Distribution{Total: total, Min: int(s[0]), Max: int(s[len(s)-1]),
		Mean:   math.Round(float64(total)*100/float64(len(s))) / 100,
		Median: int(s[(len(s)-1)/2]), P90: int(s[(len(s)-1)*9/10])}
}

// Stats returns the composition of the samples added so far.
func (b *StatsBuilder) Stats() *Stats {
	st := &Stats{Samples: b.n, ByOrigin: b.counts(b.origin, originOrder), ByType: b.counts(b.typ, byCount),
		BySource: b.counts(b.source, byCount), Chars: distribution(b.chars), TypeByOrigin: map[string][]Count{}}
	turns := make([]Count, 0, len(b.turns))
	for k, v := range b.turns {
		turns = append(turns, Count{Key: strconv.Itoa(k), Count: v, Percent: percent(v, b.n)})
	}
	slices.SortFunc(turns, func(x, y Count) int {
		a, _ := strconv.Atoi(x.Key)
		c, _ := strconv.Atoi(y.Key)
		return cmp.Compare(a, c)
	})
	st.ByTurns = turns
	for k, v := range b.typOrig {
		st.TypeByOrigin[k[0]] = append(st.TypeByOrigin[k[0]], Count{Key: k[1], Count: v, Percent: percent(v, b.n)})
	}
	for _, c := range st.TypeByOrigin {
		slices.SortFunc(c, byCount)
	}
	if b.counter != nil {
		d := distribution(b.tokens)
		st.Tokens = &d
	}
	return st
}

// ComputeStats reads every sample of samples; counter may be nil.
func ComputeStats(ctx context.Context, samples iter.Seq2[Sample, error], counter TokenCounter) (*Stats, error) {
	b := NewStatsBuilder(counter)
	n := 0
	for s, err := range samples {
		if err != nil {
			return nil, err
		}
		if n++; n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		b.Add(&s)
	}
	return b.Stats(), nil
}

// WriteMarkdown renders the statistics as Markdown tables: origins with
// counts and shares and a total row (the paper's composition table), then
// task types with their count in each origin, turns, the 20 largest
// sources, and lengths.
func (st *Stats) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	b.WriteString("| Origin | Samples | % |\n|---|---:|---:|\n")
	for _, c := range st.ByOrigin {
		fmt.Fprintf(&b, "| %s | %s | %.2f |\n", c.Key, group(c.Count), c.Percent)
	}
	fmt.Fprintf(&b, "| **Total** | **%s** | **100.00** |\n\n", group(st.Samples))

	b.WriteString("| Type | Samples | %")
	for _, o := range st.ByOrigin {
		fmt.Fprintf(&b, " | %s", o.Key)
	}
	b.WriteString(" |\n|---|---:|---:" + strings.Repeat("|---:", len(st.ByOrigin)) + "|\n")
	for _, c := range st.ByType {
		fmt.Fprintf(&b, "| %s | %s | %.2f", mdEscape(c.Key), group(c.Count), c.Percent)
		for _, o := range st.ByOrigin {
			n := 0
			for _, t := range st.TypeByOrigin[o.Key] {
				if t.Key == c.Key {
					n = t.Count
				}
			}
			fmt.Fprintf(&b, " | %s", group(n))
		}
		b.WriteString(" |\n")
	}

	b.WriteString("\n| Turns | Samples | % |\n|---:|---:|---:|\n")
	for _, c := range st.ByTurns {
		fmt.Fprintf(&b, "| %s | %s | %.2f |\n", c.Key, group(c.Count), c.Percent)
	}
	b.WriteString("\n| Source | Samples | % |\n|---|---:|---:|\n")
	for i, c := range st.BySource {
		if i == 20 {
			fmt.Fprintf(&b, "| … %d more | | |\n", len(st.BySource)-20)
			break
		}
		fmt.Fprintf(&b, "| %s | %s | %.2f |\n", mdEscape(c.Key), group(c.Count), c.Percent)
	}
	b.WriteString("\n| Length | Total | Mean | Median | P90 | Max |\n|---|---:|---:|---:|---:|---:|\n")
	row := func(name string, d Distribution) {
		fmt.Fprintf(&b, "| %s | %s | %.1f | %s | %s | %s |\n", name, group(int(d.Total)), d.Mean, group(d.Median), group(d.P90), group(d.Max))
	}
	row("characters", st.Chars)
	if st.Tokens != nil {
		row("tokens", *st.Tokens)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// group writes n with thousands separated by commas, as the paper does.
func group(n int) string {
	s := strconv.Itoa(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}

func mdEscape(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
