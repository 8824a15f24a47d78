package corpus

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"iter"
	"math"
	"runtime"
	"slices"
	"strings"
	"sync"
)

// DedupOptions configures Dedup. Exact duplicates (same NormalizeText of
// the whole sample) are always found; near duplicates when Threshold > 0.
//
// Near duplicates are samples whose sets of word shingles (ShingleWords
// consecutive words of the normalised text) have a Jaccard similarity of at
// least Threshold. MinHash estimates the similarity from Bands×Rows hash
// functions; LSH proposes as candidates the pairs that agree on all Rows
// values of at least one band, and each candidate is kept only if its
// estimated similarity reaches Threshold. With the defaults (0.8, 5-word
// shingles, 16 bands of 8 rows, 128 hashes) a pair at Jaccard 0.8 becomes a
// candidate with probability 1-(1-0.8^8)^16 = 0.95, at 0.9 with 0.9999, at
// 0.5 with 0.06; the estimate's standard error at 0.8 is 0.035.
type DedupOptions struct {
	Threshold    float64 // Jaccard threshold; 0 finds exact duplicates only
	ShingleWords int     // words per shingle; texts shorter are one shingle
	Bands, Rows  int     // LSH layout; Bands×Rows MinHash functions
	Seed         uint64  // seeds the hash functions
	Workers      int     // goroutines hashing samples; 0 means GOMAXPROCS
}

// DefaultDedupOptions returns Threshold 0.8, 5-word shingles, 16 bands of
// 8 rows and seed 1.
func DefaultDedupOptions() DedupOptions {
	return DedupOptions{Threshold: 0.8, ShingleWords: 5, Bands: 16, Rows: 8, Seed: 1}
}

// Duplicate is a sample dropped in favour of its cluster's kept sample.
type Duplicate struct {
	ID    string `json:"id"`
	Index int    `json:"index"` // position in the input
	Exact bool   `json:"exact"` // same normalised text as the kept sample
	// Similarity is the estimated Jaccard similarity to the kept sample (1
	// for exact duplicates). A member joined through a chain of near
	// duplicates may be below the threshold.
	Similarity float64 `json:"similarity"`
}

// Cluster is a group of duplicates: the first sample in input order is kept.
type Cluster struct {
	Kept       string      `json:"kept"`
	KeptIndex  int         `json:"kept_index"`
	Duplicates []Duplicate `json:"duplicates"`
}

// DedupResult says which samples to keep. Keep has one entry per input
// sample; Clusters lists groups of more than one sample, by KeptIndex.
type DedupResult struct {
	Total           int       `json:"total"`
	Kept            int       `json:"kept"`
	ExactDuplicates int       `json:"exact_duplicates"`
	NearDuplicates  int       `json:"near_duplicates"`
	Clusters        []Cluster `json:"clusters"`
	Keep            []bool    `json:"-"`
}

// dedupBatch is a run of consecutive samples hashed by one worker.
type dedupBatch struct {
	first   int
	samples []Sample
	ids     []string
	exact   [][16]byte
	sigs    []uint16 // len(ids) × hashes, b-bit MinHash values
}

const dedupBatchSize = 512

// Dedup reads all of samples and finds exact and near duplicates. It keeps
// per sample only its id, a 128-bit hash and a 2·Bands·Rows-byte signature
// (256 bytes by default), so a second pass over the input writes the kept
// samples (see DedupResult.Keep). Hashing runs on opts.Workers goroutines.
func Dedup(ctx context.Context, samples iter.Seq2[Sample, error], opts DedupOptions) (*DedupResult, error) {
	if opts.ShingleWords <= 0 || opts.Bands <= 0 || opts.Rows <= 0 {
		d := DefaultDedupOptions()
		opts.ShingleWords, opts.Bands, opts.Rows = d.ShingleWords, d.Bands, d.Rows
	}
	if opts.Threshold < 0 || opts.Threshold > 1 {
		return nil, fmt.Errorf("corpus: dedup threshold %g is not in [0, 1]", opts.Threshold)
	}
	workers := opts.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	k := opts.Bands * opts.Rows
	seeds := minhashSeeds(opts.Seed, k)
	near := opts.Threshold > 0

	todo := make(chan *dedupBatch, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			h := newMinHasher(seeds, opts.ShingleWords)
			for b := range todo {
				h.batch(b, near)
			}
		})
	}
	var batches []*dedupBatch
	cur := &dedupBatch{}
	var readErr error
	n := 0
	for s, err := range samples {
		if err != nil {
			readErr = err
			break
		}
		if n%4096 == 0 {
			if readErr = ctx.Err(); readErr != nil {
				break
			}
		}
		cur.samples = append(cur.samples, s)
		n++
		if len(cur.samples) == dedupBatchSize {
			batches = append(batches, cur)
			todo <- cur
			cur = &dedupBatch{first: n}
		}
	}
	if len(cur.samples) > 0 {
		batches = append(batches, cur)
		todo <- cur
	}
	close(todo)
	wg.Wait()
	if readErr != nil {
		return nil, readErr
	}

	res := &DedupResult{Total: n, Keep: make([]bool, n)}
	at := func(i int) (*dedupBatch, int) { return batches[i/dedupBatchSize], i % dedupBatchSize }
	sig := func(i int) []uint16 { b, j := at(i); return b.sigs[j*k : (j+1)*k] }
	id := func(i int) string { b, j := at(i); return b.ids[j] }

	parent := make([]int32, n)
	first := make(map[[16]byte]int32, n)
	var reps []int32
	for i := range n {
		b, j := at(i)
		parent[i] = int32(i)
		if f, ok := first[b.exact[j]]; ok {
			parent[i] = f
			continue
		}
		first[b.exact[j]] = int32(i)
		reps = append(reps, int32(i))
	}
	first = nil

	if near {
		pairs := lshPairs(ctx, reps, sig, opts, workers)
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		for _, p := range pairs {
			union(parent, p[0], p[1])
		}
	}

	clusters := map[int32]*Cluster{}
	var order []int32
	for i := range n {
		r := find(parent, int32(i))
		if int(r) == i {
			res.Keep[i] = true
			res.Kept++
			continue
		}
		c := clusters[r]
		if c == nil {
			c = &Cluster{Kept: id(int(r)), KeptIndex: int(r)}
			clusters[r] = c
			order = append(order, r)
		}
		d := Duplicate{ID: id(i), Index: i, Exact: batchExact(at, i, int(r))}
		if d.Exact {
			d.Similarity = 1
			res.ExactDuplicates++
		} else {
			d.Similarity = math.Round(estimateJaccard(sig(i), sig(int(r)))*1000) / 1000
			res.NearDuplicates++
		}
		c.Duplicates = append(c.Duplicates, d)
	}
	slices.Sort(order)
	for _, r := range order {
		res.Clusters = append(res.Clusters, *clusters[r])
	}
	return res, nil
}

// batchExact reports whether samples i and j have the same normalised text.
func batchExact(at func(int) (*dedupBatch, int), i, j int) bool {
	bi, oi := at(i)
	bj, oj := at(j)
	return bi.exact[oi] == bj.exact[oj]
}

// lshPairs returns the verified near-duplicate pairs among reps. Bands are
// shared out among the workers; within a band, samples are sorted by the
// band's hash and each is verified against up to 8 earlier members of its
// bucket.
func lshPairs(ctx context.Context, reps []int32, sig func(int) []uint16, opts DedupOptions, workers int) [][2]int32 {
	type entry struct {
		key uint64
		idx int32
	}
	var mu sync.Mutex
	var pairs [][2]int32
	bands := make(chan int, opts.Bands)
	for b := range opts.Bands {
		bands <- b
	}
	close(bands)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			entries := make([]entry, len(reps))
			var found [][2]int32
			for b := range bands {
				if ctx.Err() != nil {
					return
				}
				for i, r := range reps {
					entries[i] = entry{bandKey(sig(int(r))[b*opts.Rows : (b+1)*opts.Rows]), r}
				}
				slices.SortFunc(entries, func(x, y entry) int {
					if x.key != y.key {
						if x.key < y.key {
							return -1
						}
						return 1
					}
					return int(x.idx - y.idx)
				})
				for lo := 0; lo < len(entries); {
					hi := lo + 1
					for hi < len(entries) && entries[hi].key == entries[lo].key {
						hi++
					}
					for m := lo + 1; m < hi; m++ {
						si := sig(int(entries[m].idx))
						for p := lo; p < m && p < lo+8; p++ {
							if estimateJaccard(si, sig(int(entries[p].idx))) >= opts.Threshold {
								found = append(found, [2]int32{entries[p].idx, entries[m].idx})
								break
							}
						}
					}
					lo = hi
				}
			}
			mu.Lock()
			pairs = append(pairs, found...)
			mu.Unlock()
		})
	}
	wg.Wait()
	return pairs
}

func find(parent []int32, i int32) int32 {
	for parent[i] != i {
		parent[i] = parent[parent[i]]
		i = parent[i]
	}
	return i
}

// union joins the sets of a and b under the smaller root, so that every
// cluster's root is its first sample in input order.
func union(parent []int32, a, b int32) {
	ra, rb := find(parent, a), find(parent, b)
	if ra == rb {
		return
	}
	if ra > rb {
		ra, rb = rb, ra
	}
	parent[rb] = ra
}

// estimateJaccard is the fraction of equal MinHash values, corrected for
// the 1/65536 chance that two 16-bit values collide.
func estimateJaccard(a, b []uint16) float64 {
	eq := 0
	for i := range a {
		if a[i] == b[i] {
			eq++
		}
	}
	const c = 1.0 / 65536
	return max(0, (float64(eq)/float64(len(a))-c)/(1-c))
}

func bandKey(v []uint16) uint64 {
	h := uint64(14695981039346656037)
	for _, x := range v {
		h = mix64(h ^ uint64(x))
	}
	return h
}

// mix64 is the SplitMix64 finaliser: a fast bijective mixer.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

func minhashSeeds(seed uint64, k int) []uint64 {
	s := make([]uint64, k)
	x := seed
	for i := range s {
		x += 0x9e3779b97f4a7c15
		s[i] = mix64(x)
	}
	return s
}

// minHasher holds one worker's scratch space.
type minHasher struct {
	seeds []uint64
	mul   []uint64 // odd multipliers, one per hash function
	add   []uint64
	k     int
	words []uint64
	mins  []uint64
	text  strings.Builder
}

func newMinHasher(seeds []uint64, shingle int) *minHasher {
	h := &minHasher{seeds: seeds, k: shingle, mins: make([]uint64, len(seeds)),
		mul: make([]uint64, len(seeds)), add: make([]uint64, len(seeds))}
	for i, s := range seeds {
		h.mul[i] = s | 1
		h.add[i] = mix64(s)
	}
	return h
}

func (h *minHasher) batch(b *dedupBatch, near bool) {
	n := len(b.samples)
	b.ids = make([]string, n)
	b.exact = make([][16]byte, n)
	b.sigs = make([]uint16, n*len(h.seeds))
	for i := range b.samples {
		s := &b.samples[i]
		b.ids[i] = s.ID
		text := dedupText(&h.text, s)
		sum := sha256.Sum256([]byte(text))
		copy(b.exact[i][:], sum[:16])
		if near {
			h.signature(text, b.sigs[i*len(h.seeds):(i+1)*len(h.seeds)])
		}
	}
	b.samples = nil
}

// signature computes the b-bit MinHash of text's word shingles into out.
func (h *minHasher) signature(text string, out []uint16) {
	h.words = h.words[:0]
	for w := range strings.SplitSeq(text, " ") {
		if w == "" {
			continue
		}
		h.words = append(h.words, wordHash(w))
	}
	for i := range h.mins {
		h.mins[i] = math.MaxUint64
	}
	k := min(h.k, len(h.words))
	for start := 0; start+k <= len(h.words) && k > 0; start++ {
		sh := uint64(k)
		for _, w := range h.words[start : start+k] {
			sh = mix64(sh ^ w)
		}
		// The i-th hash function is a·x + b mod 2^64 with odd a: one
		// multiply-add per function on the already well-mixed shingle hash
		// (a mixer per function tripled the cost of dedup).
		sh = mix64(sh)
		for i := range h.mins {
			if v := h.mul[i]*sh + h.add[i]; v < h.mins[i] {
				h.mins[i] = v
			}
		}
	}
	for i, m := range h.mins {
		out[i] = uint16(m >> 48)
	}
}

func wordHash(w string) uint64 {
	var buf [8]byte
	h := uint64(14695981039346656037)
	for len(w) >= 8 {
		copy(buf[:], w)
		h = mix64(h ^ binary.LittleEndian.Uint64(buf[:]))
		w = w[8:]
	}
	for i := 0; i < len(w); i++ {
		h = (h ^ uint64(w[i])) * 1099511628211
	}
	return mix64(h)
}
