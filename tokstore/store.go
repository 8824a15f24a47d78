package tokstore

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync/atomic"
	"syscall"
)

// Store is an open token store: its shards mapped read-only. A Store is
// safe for concurrent reads.
type Store struct {
	Dir      string
	Manifest *Manifest
	shards   []mappedShard
	// base[i] is the global token offset of shard i; base[len] = Tokens.
	base []int64
	// docBase[i] is the global number of shard i's first document.
	docBase []int64
	sum     [32]byte // SHA-256 of manifest.json
	reads   atomic.Int64
}

type mappedShard struct {
	ids, idx, mask []byte
}

// Open maps the store in dir. It checks the manifest against the shard
// files (each file's size follows from the manifest's counts and dtype, and
// each index's first and last offsets from its token count), so a
// truncated or mismatched store fails here with an error that names the
// file, not later with a fault.
func Open(dir string) (*Store, error) {
	b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if errors.Is(err, os.ErrNotExist) {
		if _, perr := os.Stat(filepath.Join(dir, "build", "plan.json")); perr == nil {
			return nil, fmt.Errorf("tokstore: %s is not finished (no manifest.json yet): run the build again to finish it", dir)
		}
		return nil, fmt.Errorf("tokstore: %s is not a token store (no manifest.json)", dir)
	}
	if err != nil {
		return nil, err
	}
	m, err := ParseManifest(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	s := &Store{Dir: dir, Manifest: m, sum: sha256.Sum256(b)}
	var tok, docs int64
	for _, sh := range m.Shards {
		s.base = append(s.base, tok)
		s.docBase = append(s.docBase, docs)
		ms, err := mapShard(dir, m, sh)
		if err != nil {
			s.Close()
			return nil, err
		}
		s.shards = append(s.shards, ms)
		tok += sh.Tokens
		docs += sh.Docs
	}
	s.base = append(s.base, tok)
	s.docBase = append(s.docBase, docs)
	return s, nil
}

func mapShard(dir string, m *Manifest, sh Shard) (mappedShard, error) {
	var ms mappedShard
	var err error
	path := func(ext string) string { return filepath.Join(dir, "shards", sh.Name+ext) }
	if ms.ids, err = mapFile(path(".ids"), sh.Tokens*int64(m.DType.Size())); err != nil {
		return ms, err
	}
	if ms.idx, err = mapFile(path(".idx"), (sh.Docs+1)*8); err != nil {
		ms.unmap()
		return ms, err
	}
	if m.Type == TypeChat {
		if ms.mask, err = mapFile(path(".mask"), sh.Tokens); err != nil {
			ms.unmap()
			return ms, err
		}
	}
	if first, last := binary.LittleEndian.Uint64(ms.idx), binary.LittleEndian.Uint64(ms.idx[len(ms.idx)-8:]); first != 0 || last != uint64(sh.Tokens) {
		ms.unmap()
		return ms, corruptf("%s: index runs from %d to %d, want 0 to %d", path(".idx"), first, last, sh.Tokens)
	}
	return ms, nil
}

// mapFile maps path read-only after checking that it has exactly size
// bytes.
func mapFile(path string, size int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, corruptf("%v", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() != size {
		return nil, corruptf("%s has %d bytes; the manifest's counts make it %d", path, st.Size(), size)
	}
	if size == 0 {
		return []byte{}, nil
	}
	if int64(int(size)) != size {
		return nil, fmt.Errorf("tokstore: %s: %d bytes cannot be mapped on this platform", path, size)
	}
	b, err := syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("tokstore: mapping %s: %w", path, err)
	}
	return b, nil
}

func (ms *mappedShard) unmap() {
	for _, b := range [][]byte{ms.ids, ms.idx, ms.mask} {
		if len(b) > 0 {
			syscall.Munmap(b)
		}
	}
	*ms = mappedShard{}
}

// Close unmaps the shards; rows read before stay valid (they are copies).
func (s *Store) Close() error {
	for i := range s.shards {
		s.shards[i].unmap()
	}
	s.shards = nil
	return nil
}

// Fingerprint identifies the store's content: the SHA-256 of its
// manifest, which holds every shard's source hash and counts.
func (s *Store) Fingerprint() string { return hex.EncodeToString(s.sum[:]) }

// Type is the store's type.
func (s *Store) Type() Type { return s.Manifest.Type }

// Docs is the number of documents (chat: sequences).
func (s *Store) Docs() int64 { return s.Manifest.Docs }

// Tokens is the number of tokens.
func (s *Store) Tokens() int64 { return s.Manifest.Tokens }

// shardOf returns the shard holding global token t (0 ≤ t < Tokens).
func (s *Store) shardOf(t int64) int {
	return sort.Search(len(s.shards), func(i int) bool { return s.base[i+1] > t })
}

// offset is the i-th entry of shard sh's index, checked against its
// neighbours' bounds.
func (s *Store) offset(sh int, i int64) int64 {
	return int64(binary.LittleEndian.Uint64(s.shards[sh].idx[8*i:]))
}

// docSpan returns document d's global token range.
func (s *Store) docSpan(d int64) (start, end int64, err error) {
	if d < 0 || d >= s.Docs() {
		return 0, 0, fmt.Errorf("tokstore: document %d out of range [0, %d)", d, s.Docs())
	}
	sh := sort.Search(len(s.shards), func(i int) bool { return s.docBase[i+1] > d }) // first shard whose docs pass d
	local := d - s.docBase[sh]
	a, b := s.offset(sh, local), s.offset(sh, local+1)
	if a < 0 || b < a || b > s.Manifest.Shards[sh].Tokens {
		return 0, 0, corruptf("%s: shard %s: document %d spans tokens %d to %d of %d", s.Dir, s.Manifest.Shards[sh].Name, local, a, b, s.Manifest.Shards[sh].Tokens)
	}
	return s.base[sh] + a, s.base[sh] + b, nil
}

// docStartAtOrBefore returns the global start of the document holding
// global token t, and the end of that document.
func (s *Store) docAround(t int64) (start, end int64, err error) {
	sh := s.shardOf(t)
	local := t - s.base[sh]
	n := s.Manifest.Shards[sh].Docs
	// The last index entry ≤ local among 0..n-1.
	k := int64(sort.Search(int(n), func(i int) bool { return s.offset(sh, int64(i)) > local })) - 1
	if k < 0 {
		return 0, 0, corruptf("%s: shard %s: index does not start at 0", s.Dir, s.Manifest.Shards[sh].Name)
	}
	a, b := s.offset(sh, k), s.offset(sh, k+1)
	if a < 0 || a > local || b < a || b > s.Manifest.Shards[sh].Tokens || local >= b {
		return 0, 0, corruptf("%s: shard %s: index is not sorted near document %d", s.Dir, s.Manifest.Shards[sh].Name, k)
	}
	return s.base[sh] + a, s.base[sh] + b, nil
}

// appendTokens appends global tokens [start, end) to ids (and their mask
// bits to mask when mask is not nil), checking every id against the
// vocabulary.
func (s *Store) appendTokens(ids []int, mask []bool, start, end int64) ([]int, []bool, error) {
	vocab := s.Manifest.Tokenizer.VocabSize
	for start < end {
		sh := s.shardOf(start)
		local := start - s.base[sh]
		n := min(end, s.base[sh+1]) - start
		raw := s.shards[sh].ids
		switch s.Manifest.DType {
		case Uint16:
			for i := local; i < local+n; i++ {
				ids = append(ids, int(binary.LittleEndian.Uint16(raw[2*i:])))
			}
		default:
			for i := local; i < local+n; i++ {
				ids = append(ids, int(binary.LittleEndian.Uint32(raw[4*i:])))
			}
		}
		for _, id := range ids[len(ids)-int(n):] {
			if id >= vocab {
				return ids, mask, corruptf("%s: shard %s: token id %d is outside the vocabulary of %d", s.Dir, s.Manifest.Shards[sh].Name, id, vocab)
			}
		}
		if mask != nil {
			for _, b := range s.shards[sh].mask[local : local+n] {
				mask = append(mask, b != 0)
			}
		}
		start += n
	}
	s.release()
	return ids, mask, nil
}

// Doc returns document d's ids and, for a chat store, which of them are
// trained.
func (s *Store) Doc(d int64) (ids []int, trained []bool, err error) {
	a, b, err := s.docSpan(d)
	if err != nil {
		return nil, nil, err
	}
	if s.Type() == TypeChat {
		trained = make([]bool, 0, b-a)
	}
	ids, trained, err = s.appendTokens(make([]int, 0, b-a), trained, a, b)
	return ids, trained, err
}

// DocLen is document d's number of tokens.
func (s *Store) DocLen(d int64) (int, error) {
	a, b, err := s.docSpan(d)
	return int(b - a), err
}

// releaseEvery is how many reads of mapped tokens may pass between two
// releases of the mappings.
const releaseEvery = 16

// release tells the kernel, every releaseEvery reads, that the process no
// longer needs the mapped pages of the ids, so the pages a long run has read
// do not pile up in its resident set (they stay in the page cache). A fault
// maps more than the page asked for (fault-around, large page-cache
// folios), so dropping the pages of each read would not be enough; the
// whole mappings are dropped instead, which costs a walk of page tables
// that are mostly empty. A read running at the same time only faults its
// pages in again.
func (s *Store) release() {
	if s.reads.Add(1)%releaseEvery != 0 {
		return
	}
	for _, ms := range s.shards {
		if len(ms.ids) > 0 {
			dontNeed(ms.ids)
		}
		if len(ms.mask) > 0 {
			dontNeed(ms.mask)
		}
	}
}
