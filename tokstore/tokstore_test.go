package tokstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/pltune/pltune/corpus"
	"github.com/pltune/pltune/corpus/samples"
	"github.com/pltune/pltune/tokenize"
)

var (
	tokOnce sync.Once
	tokDir  string
	tokTok  *tokenize.Tokenizer
	tokErr  error
)

// testTokenizer trains a small byte-level BPE tokenizer (Llama-3 special
// tokens and chat template) on the sample corpus's pre-training texts.
func testTokenizer(t testing.TB) (*tokenize.Tokenizer, string) {
	t.Helper()
	tokOnce.Do(func() {
		var texts []string
		for _, d := range sampleDocs(t) {
			texts = append(texts, d)
		}
		var tt *tokenize.TrainedTokenizer
		tt, tokErr = tokenize.TrainBPE(context.Background(), slices.Values(texts), tokenize.BPETrainOptions{VocabSize: 600})
		if tokErr != nil {
			return
		}
		tokDir, tokErr = os.MkdirTemp("", "tokstore-tok")
		if tokErr != nil {
			return
		}
		if tokErr = tt.WriteDir(tokDir); tokErr != nil {
			return
		}
		tokTok, tokErr = tokenize.Load(tokDir)
	})
	if tokErr != nil {
		t.Fatal(tokErr)
	}
	return tokTok, tokDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if tokDir != "" {
		os.RemoveAll(tokDir)
	}
	os.Exit(code)
}

// sampleDocs are the texts of the sample corpus's pre-training file.
func sampleDocs(t testing.TB) []string {
	b, err := fs.ReadFile(samples.FS(), samples.Pretrain)
	if err != nil {
		t.Fatal(err)
	}
	var docs []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var r struct{ Text string }
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatal(err)
		}
		docs = append(docs, r.Text)
	}
	return docs
}

// textInputs writes the sample documents as JSONL and as plain text (blank
// lines between documents, paragraphs joined) and returns the files and
// the documents in the order a reader of the files sees them.
func textInputs(t *testing.T, dir string) ([]string, []string) {
	docs := sampleDocs(t)
	var jl bytes.Buffer
	for _, d := range docs {
		b, _ := json.Marshal(map[string]string{"id": "x", "text": d})
		jl.Write(b)
		jl.WriteByte('\n')
	}
	jl.WriteString("\n") // a blank line is skipped
	var txt bytes.Buffer
	var want []string
	want = append(want, docs...)
	for _, d := range docs {
		// Plain text cannot hold blank lines inside a document.
		p := strings.ReplaceAll(d, "\n\n", "\n")
		txt.WriteString(p + "\n  \n\n")
		want = append(want, strings.TrimSpace(p+"\n"))
	}
	a, b := filepath.Join(dir, "a.jsonl"), filepath.Join(dir, "b.txt")
	if err := os.WriteFile(a, jl.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(b, txt.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return []string{a, b}, want
}

func buildOpts(t testing.TB) BuildOptions {
	tok, dir := testTokenizer(t)
	sum, err := TokenizerSHA256(dir)
	if err != nil {
		t.Fatal(err)
	}
	return BuildOptions{Tokenizer: tok, TokenizerSHA256: sum, ChunkBytes: 8 << 10, Workers: 3}
}

func mustBuild(t *testing.T, dir string, files []string, opts BuildOptions) *Manifest {
	t.Helper()
	res, err := Build(context.Background(), dir, files, opts)
	if err != nil {
		t.Fatal(err)
	}
	if res.Manifest == nil {
		t.Fatal("no manifest")
	}
	return res.Manifest
}

func mustOpen(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func allRows(t *testing.T, r Rows) []tokenize.PackedRow {
	t.Helper()
	out := make([]tokenize.PackedRow, r.Len())
	for i := range out {
		row, err := r.Row(i)
		if err != nil {
			t.Fatalf("row %d: %v", i, err)
		}
		if row.Len() != r.Tokens(i) {
			t.Fatalf("row %d: %d tokens, Tokens says %d", i, row.Len(), r.Tokens(i))
		}
		out[i] = row
	}
	return out
}

// A text store's rows are those tokenize.PretrainRows makes of the same
// documents in memory, across chunk and shard boundaries.
func TestTextStoreRowsMatchPretrainRows(t *testing.T) {
	tmp := t.TempDir()
	files, docs := textInputs(t, tmp)
	opts := buildOpts(t)
	m := mustBuild(t, filepath.Join(tmp, "store"), files, opts)
	if m.Type != TypeText || m.DType != Uint16 || len(m.Shards) < 4 || m.Docs != int64(len(docs)) {
		t.Fatalf("manifest: type %s dtype %s, %d shards, %d docs; want text, uint16, several shards, %d docs", m.Type, m.DType, len(m.Shards), m.Docs, len(docs))
	}
	s := mustOpen(t, filepath.Join(tmp, "store"))
	for _, rowLen := range []int{7, 64, 1000} {
		rows, err := TextRows(s, rowLen)
		if err != nil {
			t.Fatal(err)
		}
		var want []tokenize.PackedRow
		for r, err := range tokenize.PretrainRows(context.Background(), opts.Tokenizer, slices.Values(docs), tokenize.PretrainOptions{RowLen: rowLen, KeepLast: true}) {
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, r)
		}
		got := allRows(t, rows)
		if len(got) != len(want) {
			t.Fatalf("row length %d: %d rows, want %d", rowLen, len(got), len(want))
		}
		for i := range want {
			if !reflect.DeepEqual(got[i], want[i]) {
				t.Fatalf("row length %d: row %d differs:\n got %v\nwant %v", rowLen, i, got[i], want[i])
			}
		}
	}
}

func chatInputs(t *testing.T, dir string) []string {
	var files []string
	for _, f := range []string{samples.Organic, samples.Synthetic} {
		b, err := fs.ReadFile(samples.FS(), f)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, filepath.Base(f))
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, p)
	}
	return files
}

// A chat store holds SFTBuilder's sequences with their label masks; its
// rows are the sequences' own rows, or tokenize.Pack's rows.
func TestChatStoreRowsMatchSFT(t *testing.T) {
	tmp := t.TempDir()
	files := chatInputs(t, tmp)
	opts := buildOpts(t)
	opts.SFT = tokenize.SFTOptions{MaxLen: 700}
	m := mustBuild(t, filepath.Join(tmp, "store"), files, opts)
	b, err := tokenize.NewSFTBuilder(opts.Tokenizer, opts.SFT)
	if err != nil {
		t.Fatal(err)
	}
	var seqs []tokenize.Sequence
	var tooLong int64
	for _, f := range files {
		got, st, err := b.BuildAll(context.Background(), corpus.ReadSamples(context.Background(), f, corpus.Options{}))
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, got...)
		tooLong += int64(st.TooLong)
	}
	if m.Type != TypeChat || m.Docs != int64(len(seqs)) || m.Skipped.TooLong != tooLong || tooLong == 0 || m.Trained == 0 {
		t.Fatalf("manifest: %s, %d docs, %d too long, %d trained; want chat, %d docs, %d too long (> 0)", m.Type, m.Docs, m.Skipped.TooLong, m.Trained, len(seqs), tooLong)
	}
	s := mustOpen(t, filepath.Join(tmp, "store"))
	single, err := ChatRows(s, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	got := allRows(t, single)
	for i, seq := range seqs {
		if !reflect.DeepEqual(got[i], seq.Row()) {
			t.Fatalf("sequence %d differs from SFTBuilder's", i)
		}
	}
	packed, err := ChatRows(s, 1500, true)
	if err != nil {
		t.Fatal(err)
	}
	want, err := tokenize.Pack(seqs, 1500)
	if err != nil {
		t.Fatal(err)
	}
	if got := allRows(t, packed); !reflect.DeepEqual(got, want) {
		t.Fatalf("packed rows differ from tokenize.Pack's (%d rows, want %d)", len(got), len(want))
	}
	if _, err := TextRows(s, 10); err == nil {
		t.Fatal("TextRows accepted a chat store")
	}
}

// storeFiles reads every file of a store but the build records' order-free
// parts, for comparing two builds.
func storeFiles(t *testing.T, dir string) map[string][]byte {
	out := map[string][]byte{}
	for _, sub := range []string{"manifest.json", "shards"} {
		filepath.WalkDir(filepath.Join(dir, sub), func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				t.Fatal(err)
			}
			if !d.IsDir() {
				b, _ := os.ReadFile(p)
				rel, _ := filepath.Rel(dir, p)
				out[rel] = b
			}
			return nil
		})
	}
	return out
}

// An interrupted build run again finishes the store without redoing the
// finished units, and gives the store a single run gives; ranks build
// disjoint units into one folder and the last one writes the manifest.
func TestBuildResumesAndSharesAmongRanks(t *testing.T) {
	tmp := t.TempDir()
	files, _ := textInputs(t, tmp)
	opts := buildOpts(t)
	whole := filepath.Join(tmp, "whole")
	mustBuild(t, whole, files, opts)
	want := storeFiles(t, whole)

	resumed := filepath.Join(tmp, "resumed")
	ctx, cancel := context.WithCancel(context.Background())
	o := opts
	o.Progress = func(p Progress) {
		if p.UnitsDone >= 2 {
			cancel()
		}
	}
	res, err := Build(ctx, resumed, files, o)
	if !errors.Is(err, context.Canceled) || res.Manifest != nil {
		t.Fatalf("interrupted build: %v, manifest %v; want context.Canceled and none", err, res.Manifest)
	}
	if _, err := Open(resumed); err == nil || !strings.Contains(err.Error(), "not finished") {
		t.Fatalf("Open of an unfinished store: %v", err)
	}
	if tmps, _ := filepath.Glob(filepath.Join(resumed, "shards", "*.tmp*")); len(tmps) > 0 {
		t.Fatalf("temporary files left: %v", tmps)
	}
	res, err = Build(context.Background(), resumed, files, opts)
	if err != nil {
		t.Fatal(err)
	}
	if res.Progress.Resumed < 2 || res.Progress.Resumed >= res.Progress.Units {
		t.Fatalf("resumed %d of %d units; want the finished ones (≥ 2) kept", res.Progress.Resumed, res.Progress.Units)
	}
	if got := storeFiles(t, resumed); !reflect.DeepEqual(got, want) {
		t.Fatal("the resumed build differs from an uninterrupted one")
	}

	ranks := filepath.Join(tmp, "ranks")
	o = opts
	o.World, o.Rank = 2, 0
	res, err = Build(context.Background(), ranks, files, o)
	if err != nil || res.Manifest != nil || !res.Progress.ThisRank {
		t.Fatalf("rank 0 of 2: %v, manifest %v; want its share done and no manifest yet", err, res.Manifest)
	}
	o.Rank = 1
	if res, err = Build(context.Background(), ranks, files, o); err != nil || res.Manifest == nil {
		t.Fatalf("rank 1 of 2: %v; want the manifest", err)
	}
	if got := storeFiles(t, ranks); !reflect.DeepEqual(got, want) {
		t.Fatal("the two ranks' store differs from one process's")
	}

	o = opts
	o.ChunkBytes *= 2
	if _, err := Build(context.Background(), resumed, files, o); err == nil || !strings.Contains(err.Error(), "other inputs") {
		t.Fatalf("rebuild with other options: %v; want a refusal", err)
	}
}

// Hostile stores fail on Open or on the row that holds the damage, with
// an error naming the file, never a panic.
func TestOpenRejectsDamagedStores(t *testing.T) {
	tmp := t.TempDir()
	files, _ := textInputs(t, tmp)
	opts := buildOpts(t)
	good := filepath.Join(tmp, "good")
	mustBuild(t, good, files[:1], opts)
	copyStore := func(name string) string {
		dst := filepath.Join(tmp, name)
		for rel, b := range storeFiles(t, good) {
			os.MkdirAll(filepath.Dir(filepath.Join(dst, rel)), 0o755)
			os.WriteFile(filepath.Join(dst, rel), b, 0o644)
		}
		return dst
	}
	edit := func(dir, rel string, f func([]byte) []byte) {
		p := filepath.Join(dir, rel)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(p, f(b), 0o644)
	}
	cases := []struct {
		name, want string
		damage     func(dir string)
	}{
		{"truncated ids", "00000.ids has", func(d string) {
			edit(d, "shards/00000.ids", func(b []byte) []byte { return b[:len(b)-2] })
		}},
		{"missing index", "00000.idx", func(d string) { os.Remove(filepath.Join(d, "shards/00000.idx")) }},
		{"token count", "tokens", func(d string) {
			edit(d, "manifest.json", func(b []byte) []byte { return bytes.Replace(b, []byte(`"tokens": `), []byte(`"tokens": 1`), 1) })
		}},
		{"shard name", "digits", func(d string) {
			edit(d, "manifest.json", func(b []byte) []byte { return bytes.Replace(b, []byte(`"00000"`), []byte(`"../x"`), 1) })
		}},
		{"index end", "index runs", func(d string) {
			edit(d, "shards/00000.idx", func(b []byte) []byte { b[len(b)-1] = 9; return b })
		}},
	}
	for _, c := range cases {
		dir := copyStore(strings.ReplaceAll(c.name, " ", "-"))
		c.damage(dir)
		_, err := Open(dir)
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Open: %v; want ErrCorrupt mentioning %q", c.name, err, c.want)
		}
	}
	// Damage Open cannot see without reading everything: reported by Row.
	dir := copyStore("bad-id")
	edit(dir, "shards/00000.ids", func(b []byte) []byte { b[100], b[101] = 0xff, 0xff; return b })
	s := mustOpen(t, dir)
	rows, _ := TextRows(s, 64)
	if _, err := rows.Row(0); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "outside the vocabulary") {
		t.Errorf("out-of-vocabulary id: %v", err)
	}
	dir = copyStore("bad-index")
	edit(dir, "shards/00000.idx", func(b []byte) []byte { b[8*3+7] = 0x80; return b })
	s = mustOpen(t, dir)
	rows, _ = TextRows(s, 64)
	failed := false
	for i := range rows.Len() {
		if _, err := rows.Row(i); err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Errorf("unsorted index: %v", err)
			}
			failed = true
		}
	}
	if !failed {
		t.Error("an unsorted index went unnoticed")
	}
}

// A Loader resumed from a saved position delivers exactly what the
// uninterrupted one delivers next, mid-epoch and across epochs, and the
// ranks' rows of each batch are disjoint.
func TestLoaderResumesMidEpochAndSplitsRanks(t *testing.T) {
	tmp := t.TempDir()
	files, _ := textInputs(t, tmp)
	mustBuild(t, filepath.Join(tmp, "s"), files, buildOpts(t))
	s := mustOpen(t, filepath.Join(tmp, "s"))
	rows, err := TextRows(s, 50)
	if err != nil {
		t.Fatal(err)
	}
	full := &Loader{Rows: rows, Seed: 7, BatchSize: 3}
	per := full.BatchesPerEpoch()
	var want [][]int
	for range 2*per + 5 {
		idx, err := full.NextIndices()
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, idx)
	}
	if slices.Equal(want[0], want[per]) {
		t.Fatal("epochs 0 and 1 start alike: the order is not reshuffled")
	}
	stopAt := per/2 + 1
	first := &Loader{Rows: rows, Seed: 7, BatchSize: 3}
	for range stopAt {
		first.Next()
	}
	pos := first.Position()
	b, _ := json.Marshal(pos)
	var saved Position
	json.Unmarshal(b, &saved)
	resumed := &Loader{Rows: rows, Seed: 7, BatchSize: 3}
	resumed.Seek(saved)
	for k := stopAt; k < len(want); k++ {
		idx, err := resumed.NextIndices()
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(idx, want[k]) {
			t.Fatalf("batch %d after resuming at %+v: %v, want %v", k, saved, idx, want[k])
		}
	}
	// Two ranks of batch 3 together see what one process of batch 6 sees.
	r0 := &Loader{Rows: rows, Seed: 7, BatchSize: 3, World: 2, Rank: 0}
	r1 := &Loader{Rows: rows, Seed: 7, BatchSize: 3, World: 2, Rank: 1}
	one := &Loader{Rows: rows, Seed: 7, BatchSize: 6}
	for range r0.BatchesPerEpoch() {
		a, _ := r0.NextIndices()
		b, _ := r1.NextIndices()
		c, _ := one.NextIndices()
		for _, i := range a {
			if slices.Contains(b, i) {
				t.Fatalf("row %d on both ranks", i)
			}
		}
		if !slices.Equal(append(a, b...), c) {
			t.Fatalf("ranks %v + %v, one process %v", a, b, c)
		}
	}
	got, err := full.Next()
	if err != nil || len(got) != 3 {
		t.Fatalf("Next: %d rows, %v", len(got), err)
	}
}

// Mixing takes each source's weighted share of tokens within its cap and
// reports tokens per source.
func TestMixWeightsCapsAndReport(t *testing.T) {
	tmp := t.TempDir()
	files, _ := textInputs(t, tmp)
	opts := buildOpts(t)
	mustBuild(t, filepath.Join(tmp, "a"), files[:1], opts)
	mustBuild(t, filepath.Join(tmp, "b"), files[1:], opts)
	a, _ := TextRows(mustOpen(t, filepath.Join(tmp, "a")), 32)
	b, _ := TextRows(mustOpen(t, filepath.Join(tmp, "b")), 32)
	var aTok int64
	for i := range a.Len() {
		aTok += int64(a.Tokens(i))
	}
	capB := aTok / 10
	m, err := Mix([]MixSource{{Name: "a", Rows: a, Weight: 3}, {Name: "b", Rows: b, Weight: 1, CapTokens: capB}}, 1)
	if err != nil {
		t.Fatal(err)
	}
	ra, rb := m.Report[0], m.Report[1]
	if rb.TakenTokens > capB || rb.CappedTokens == 0 {
		t.Fatalf("source b: took %d tokens over its cap %d (capped %d)", rb.TakenTokens, capB, rb.CappedTokens)
	}
	if share := float64(ra.TakenTokens) / float64(ra.TakenTokens+rb.TakenTokens); share < 0.74 || share > 0.76 {
		t.Fatalf("share of a %.3f; want 0.75 (report %+v)", share, m.Report)
	}
	if ra.TakenTokens >= ra.Tokens {
		t.Fatalf("a gave all %d tokens; the weights should have trimmed it", ra.Tokens)
	}
	var tokens [2]int64
	for i := range m.Len() {
		row, err := m.Row(i)
		if err != nil {
			t.Fatal(err)
		}
		tokens[map[string]int{"a": 0, "b": 1}[m.Source(i)]] += int64(row.Len())
	}
	if tokens[0] != ra.TakenTokens || tokens[1] != rb.TakenTokens {
		t.Fatalf("rows hold %v tokens; report says %d, %d", tokens, ra.TakenTokens, rb.TakenTokens)
	}
	again, _ := Mix([]MixSource{{Name: "a", Rows: a, Weight: 3}, {Name: "b", Rows: b, Weight: 1, CapTokens: capB}}, 1)
	if !slices.Equal(again.refs, m.refs) || again.Fingerprint() != m.Fingerprint() {
		t.Fatal("the same mix twice differs")
	}
}

// A Writer's store reads back what was added, across shards.
func TestWriterRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "w")
	w, err := NewWriter(dir, TypeChat, TokenizerInfo{VocabSize: 70000, EOSID: 1}, 10)
	if err != nil {
		t.Fatal(err)
	}
	docs := [][]int{{1, 69999, 3}, {5, 6, 7, 8, 9, 10, 11}, {4}, {65536, 2}}
	for i, d := range docs {
		tr := make([]bool, len(d))
		tr[len(d)-1] = i%2 == 0
		if err := w.Add(d, tr); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Add([]int{70000}, []bool{true}); err == nil {
		t.Fatal("an id outside the vocabulary was written")
	}
	m, err := w.Close()
	if err != nil {
		t.Fatal(err)
	}
	if m.DType != Uint32 || len(m.Shards) != 2 || m.Tokens != 13 || m.Trained != 2 {
		t.Fatalf("manifest %+v", m)
	}
	s := mustOpen(t, dir)
	for i, d := range docs {
		ids, tr, err := s.Doc(int64(i))
		if err != nil || !slices.Equal(ids, d) || tr[len(d)-1] != (i%2 == 0) {
			t.Fatalf("doc %d: %v %v %v", i, ids, tr, err)
		}
	}
}
