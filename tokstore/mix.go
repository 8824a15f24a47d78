package tokstore

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/pltune/pltune/tokenize"
)

// MixSource is one store's rows in a mixture.
type MixSource struct {
	Name string
	Rows Rows
	// Weight is the source's target share of the mixture's tokens; the
	// weights are normalised. All zero: every source gives what its cap
	// leaves. A zero weight beside positive ones leaves the source out.
	Weight float64
	// CapTokens caps the tokens taken from the source (0: no cap), as the
	// paper caps each source of its composition.
	CapTokens int64
}

// MixLine reports one source.
type MixLine struct {
	Name            string  `json:"name"`
	Rows            int     `json:"rows"`             // rows available
	Tokens          int64   `json:"tokens"`           // tokens available
	TakenRows       int     `json:"taken_rows"`       // rows in the mixture
	TakenTokens     int64   `json:"taken_tokens"`     // tokens in the mixture
	CappedTokens    int64   `json:"capped_tokens"`    // left out by the cap
	Share           float64 `json:"share"`            // of the mixture's tokens
	RequestedWeight float64 `json:"requested_weight"` // normalised weight asked for
}

// Mixture is rows drawn from several sources: it implements Rows. Row i of
// a mixture is one source's row; the rows of each source are chosen under
// the seed and kept in source order (the training loop shuffles).
type Mixture struct {
	sources []MixSource
	refs    []uint64 // source << 40 | row
	Report  []MixLine
	seed    uint64
}

const refShift = 40

// Mix chooses each source's rows: a seeded random order of its rows is
// taken up to its cap, then every source gives the share of tokens its
// weight asks for, as many tokens as the scarcest source (relative to its
// weight) allows. Memory: 8 bytes per row of each source while choosing,
// 8 per chosen row after.
func Mix(sources []MixSource, seed uint64) (*Mixture, error) {
	if len(sources) == 0 {
		return nil, fmt.Errorf("tokstore: mix of no sources")
	}
	if len(sources) >= 1<<(64-refShift) {
		return nil, fmt.Errorf("tokstore: mix of %d sources", len(sources))
	}
	var wsum float64
	for i, s := range sources {
		if s.Weight < 0 || math.IsNaN(s.Weight) || math.IsInf(s.Weight, 0) || s.CapTokens < 0 {
			return nil, fmt.Errorf("tokstore: mix source %d (%s): weight %v and cap %d must be finite and not negative", i, s.Name, s.Weight, s.CapTokens)
		}
		if s.Rows.Len() >= 1<<refShift {
			return nil, fmt.Errorf("tokstore: mix source %d (%s) has too many rows", i, s.Name)
		}
		wsum += s.Weight
	}
	m := &Mixture{sources: sources, seed: seed}
	orders := make([][]int, len(sources))
	eligible := make([]int64, len(sources))
	for i, s := range sources {
		line := MixLine{Name: s.Name, Rows: s.Rows.Len()}
		if wsum > 0 {
			line.RequestedWeight = s.Weight / wsum
		}
		r := rand.New(rand.NewPCG(seed, uint64(i)+0x6d6978))
		order := r.Perm(s.Rows.Len())
		var tok int64
		kept := 0
		for _, row := range order {
			n := int64(s.Rows.Tokens(row))
			line.Tokens += n
			if s.CapTokens > 0 && tok+n > s.CapTokens {
				line.CappedTokens += n
				continue
			}
			order[kept] = row
			kept++
			tok += n
		}
		orders[i] = order[:kept]
		eligible[i] = tok
		m.Report = append(m.Report, line)
	}
	// The largest total every weighted source can fill.
	total := math.Inf(1)
	if wsum > 0 {
		for i, s := range sources {
			if s.Weight > 0 {
				total = math.Min(total, float64(eligible[i])/(s.Weight/wsum))
			}
		}
	}
	var all int64
	for i, s := range sources {
		want := float64(eligible[i])
		if wsum > 0 {
			want = total * s.Weight / wsum
		}
		var tok int64
		for _, row := range orders[i] {
			if float64(tok) >= want-0.5 {
				break
			}
			tok += int64(s.Rows.Tokens(row))
			m.refs = append(m.refs, uint64(i)<<refShift|uint64(row))
			m.Report[i].TakenRows++
		}
		m.Report[i].TakenTokens = tok
		all += tok
		orders[i] = nil
	}
	for i := range m.Report {
		if all > 0 {
			m.Report[i].Share = math.Round(1e4*float64(m.Report[i].TakenTokens)/float64(all)) / 1e4
		}
	}
	if len(m.refs) == 0 {
		return nil, fmt.Errorf("tokstore: the mix takes no rows (empty sources or caps below one row)")
	}
	return m, nil
}

// Len is the number of rows.
func (m *Mixture) Len() int { return len(m.refs) }

func (m *Mixture) ref(i int) (int, int) {
	r := m.refs[i]
	return int(r >> refShift), int(r & (1<<refShift - 1))
}

// Row returns row i.
func (m *Mixture) Row(i int) (tokenize.PackedRow, error) {
	if i < 0 || i >= len(m.refs) {
		return tokenize.PackedRow{}, fmt.Errorf("tokstore: row %d out of range [0, %d)", i, len(m.refs))
	}
	s, r := m.ref(i)
	return m.sources[s].Rows.Row(r)
}

// Tokens is row i's number of tokens.
func (m *Mixture) Tokens(i int) int {
	s, r := m.ref(i)
	return m.sources[s].Rows.Tokens(r)
}

// Source is the name of the source of row i.
func (m *Mixture) Source(i int) string {
	s, _ := m.ref(i)
	return m.sources[s].Name
}

// Fingerprint identifies the mixture: its sources' fingerprints,
// weights, caps and seed.
func (m *Mixture) Fingerprint() string {
	type src struct {
		Name   string
		Rows   string
		Weight float64
		Cap    int64
	}
	var v struct {
		Seed    uint64
		Sources []src
	}
	v.Seed = m.seed
	for _, s := range m.sources {
		v.Sources = append(v.Sources, src{s.Name, s.Rows.Fingerprint(), s.Weight, s.CapTokens})
	}
	b, _ := json.Marshal(v)
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:8])
}
