package tokenize

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestLlama3Pieces(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"Ala ma kota", []string{"Ala", " ma", " kota"}},
		{"Zażółć gęślą jaźń", []string{"Zażółć", " gęślą", " jaźń"}},
		{"it's I'LL", []string{"it", "'s", " I", "'LL"}},
		{"1234567", []string{"123", "456", "7"}},
		{"  x", []string{" ", " x"}},
		{"end   ", []string{"end", "   "}},
		{"a\n\n b", []string{"a", "\n\n", " b"}},
		{"x \t\n  y", []string{"x", " \t\n", " ", " y"}},
		{"„cytat” ...!\n\nDalej", []string{"„cytat", "”", " ...!\n\n", "Dalej"}},
		{"12,5 zł", []string{"12", ",", "5", " zł"}},
		{"emoji 🍂🍂 tu", []string{"emoji", " 🍂🍂", " tu"}},
		{"\u00a0słowo", []string{"\u00a0słowo"}},
		{"\n", []string{"\n"}},
		{"", nil},
	}
	for _, tt := range tests {
		got := slices.Collect(llama3Pieces(tt.in))
		if !slices.Equal(got, tt.want) {
			t.Errorf("llama3Pieces(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func FuzzLlama3Pieces(f *testing.F) {
	f.Add("Zażółć gęślą jaźń 123 it's\n\n  ok")
	f.Add("\xff\xfe ' '\r\n")
	f.Fuzz(func(t *testing.T, s string) {
		var b strings.Builder
		for p := range llama3Pieces(s) {
			if p == "" {
				t.Fatal("empty piece")
			}
			b.WriteString(p)
		}
		if b.String() != s {
			t.Fatalf("pieces join to %q", b.String())
		}
	})
}

// bpeTrainingText returns a few hundred KB of Polish: the strings of the
// embedded sample corpus (JSON and JSON Lines files).
func bpeTrainingText(t testing.TB) []string {
	t.Helper()
	var texts []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case string:
			texts = append(texts, v)
		case []any:
			for _, x := range v {
				walk(x)
			}
		case map[string]any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	for _, name := range []string{"organic.json", "preferences.jsonl"} {
		b, err := os.ReadFile(filepath.Join("..", "corpus", "samples", "data", name))
		if err != nil {
			t.Skipf("no Polish training text: %v", err)
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		for {
			var v any
			if err := dec.Decode(&v); err == io.EOF {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			walk(v)
		}
	}
	// Map iteration above shuffles the strings; training must not depend on
	// their order, but the test's inputs should be stable.
	slices.Sort(texts)
	return texts
}

var bpeRoundTrip = []string{
	"Stolicą Polski jest Warszawa.",
	"Zażółć gęślą jaźń — ŻÓŁW i źdźbło.",
	"  dwie spacje,\ttab i\n\nnowe linie  ",
	"Kwota: 12 345,67 zł (31.01.2004 r.) 🍂🇵🇱 日本語",
	"<|start_header_id|>user<|end_header_id|>\n\nCześć!<|eot_id|>",
}

var (
	trainedOnce sync.Once
	trainedTok  *TrainedTokenizer
)

// trainedSmall returns the tokenizer of trainSmall, trained once for the
// tests that only use it.
func trainedSmall(t testing.TB) *TrainedTokenizer {
	t.Helper()
	trainedOnce.Do(func() { trainedTok = trainSmall(t) })
	if trainedTok == nil {
		t.Skip("the shared trained tokenizer is missing: see the test that trained it first")
	}
	return trainedTok
}

func trainSmall(t testing.TB) *TrainedTokenizer {
	t.Helper()
	text := bpeTrainingText(t)
	start := time.Now()
	tt, err := TrainBPE(context.Background(), slices.Values(text), BPETrainOptions{VocabSize: 4000, SpecialTokens: []string{"<|tool|>"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("trained %d tokens on %d lines in %v", len(tt.Vocab), len(text), time.Since(start))
	return tt
}

func TestTrainBPE(t *testing.T) {
	tt := trainSmall(t)
	if len(tt.Vocab) != 4000 {
		t.Fatalf("vocabulary of %d, want 4000", len(tt.Vocab))
	}
	if tt.Special != 7 || tt.Vocab[len(tt.Vocab)-1] != "<|tool|>" || tt.Vocab[len(tt.Vocab)-7] != TrainedBOS {
		t.Fatalf("special tokens %q", tt.Vocab[len(tt.Vocab)-tt.Special:])
	}
	if len(tt.Merges) != 4000-256-7 {
		t.Fatalf("%d merges", len(tt.Merges))
	}
	seen := map[string]bool{}
	for i, tok := range tt.Vocab {
		if seen[tok] {
			t.Fatalf("token %d %q repeated", i, tok)
		}
		seen[tok] = true
	}
	for i, m := range tt.Merges {
		if tt.Vocab[256+i] != m[0]+m[1] {
			t.Fatalf("merge %d %q does not make token %q", i, m, tt.Vocab[256+i])
		}
	}
	// " się" is among the most frequent Polish words: it must be one token.
	if !seen[byteLevel(" się")] {
		t.Error(`" się" is not a token`)
	}

	again := trainSmall(t)
	if !slices.Equal(tt.Vocab, again.Vocab) {
		t.Error("training twice gave different vocabularies")
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := TrainBPE(ctx, slices.Values(bpeRoundTrip), BPETrainOptions{VocabSize: 300}); err == nil {
		t.Error("cancelled training succeeded")
	}
	if _, err := TrainBPE(context.Background(), slices.Values(bpeRoundTrip), BPETrainOptions{VocabSize: 200}); err == nil {
		t.Error("vocabulary smaller than the byte alphabet accepted")
	}
	if _, err := TrainBPE(context.Background(), slices.Values(bpeRoundTrip), BPETrainOptions{VocabSize: 300, SpecialTokens: []string{TrainedEOT}}); err == nil {
		t.Error("repeated special token accepted")
	}
}

func TestTrainedTokenizerLoads(t *testing.T) {
	tt := trainedSmall(t)
	dir := t.TempDir()
	if err := tt.WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	tok, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if tok.VocabSize() != 4000 {
		t.Errorf("VocabSize %d", tok.VocabSize())
	}
	bos, _ := tok.TokenToID(TrainedBOS)
	eot, _ := tok.TokenToID(TrainedEOT)
	if bos != 4000-7 || eot != 4000-7+4 {
		t.Errorf("BOS id %d, EOT id %d", bos, eot)
	}
	for _, s := range bpeRoundTrip {
		ids := tok.Encode(s, true)
		if ids[0] != bos {
			t.Errorf("%q: first id %d, want BOS %d", s, ids[0], bos)
		}
		if got := tok.Decode(ids[1:], false); got != s {
			t.Errorf("round trip of %q gave %q", s, got)
		}
	}
	if ids := tok.Encode("<|eot_id|>", false); !slices.Equal(ids, []int{eot}) {
		t.Errorf("special token in text encoded as %v", ids)
	}
	cfg := tok.Config()
	if cfg.EOSToken != TrainedEOT || cfg.PadToken != TrainedPad || cfg.BOSToken != TrainedBOS {
		t.Errorf("config tokens %+v", cfg)
	}
	b, err := NewSFTBuilder(tok, SFTOptions{})
	if err != nil {
		t.Fatal(err)
	}
	seq, err := b.BuildMessages(multiTurn)
	if err != nil {
		t.Fatal(err)
	}
	if got := trainedRuns(tok, seq); len(got) != 2 || got[1] != "W 1834 r.<|eot_id|>" {
		t.Errorf("trained runs %q", got)
	}
}

// TestTrainedTokenizerMatchesHF encodes with Hugging Face's own tokenizers
// (Rust, run from Node) to check the written tokenizer.json means the same
// to it as to Load.
func TestTrainedTokenizerMatchesHF(t *testing.T) {
	modules, err := filepath.Abs(filepath.Join("..", ".pltune", "npm", "node_modules"))
	if err != nil {
		t.Fatal(err)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node not installed")
	}
	if _, err := os.Stat(filepath.Join(modules, "@anush008", "tokenizers")); err != nil {
		t.Skip("@anush008/tokenizers not installed; run tokenize/testdata/hf/install.sh")
	}
	tt := trainedSmall(t)
	dir := t.TempDir()
	if err := tt.WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	tok, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	inputs := slices.Clone(bpeRoundTrip)
	for i, s := range bpeTrainingText(t) {
		if i%10 == 0 {
			inputs = append(inputs, s)
		}
	}
	in, _ := json.Marshal(inputs)
	const script = `
const {Tokenizer} = require("@anush008/tokenizers");
const fs = require("fs");
(async () => {
  const tok = Tokenizer.fromFile(process.argv[1] + "/tokenizer.json");
  const texts = JSON.parse(fs.readFileSync(0, "utf8"));
  const out = [];
  for (const s of texts) out.push((await tok.encode(s, null, {addSpecialTokens: true})).getIds());
  process.stdout.write(JSON.stringify(out));
})().catch(e => { console.error(e); process.exit(1); });`
	cmd := exec.Command(node, "-e", script, dir)
	cmd.Env = append(os.Environ(), "NODE_PATH="+modules)
	cmd.Stdin = strings.NewReader(string(in))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node: %v", err)
	}
	var want [][]int
	if err := json.Unmarshal(out, &want); err != nil {
		t.Fatal(err)
	}
	for i, s := range inputs {
		if got := tok.Encode(s, true); !slices.Equal(got, want[i]) {
			t.Errorf("%q:\n got %v\nwant %v", s, got, want[i])
		}
	}
}

// byteLevel writes s in the byte-to-Unicode alphabet of byte-level BPE.
func byteLevel(s string) string {
	var b strings.Builder
	for i := range len(s) {
		b.WriteRune(byteAlphabet[s[i]])
	}
	return b.String()
}

func ExampleTrainBPE() {
	texts := []string{"Ala ma kota, a kot ma Alę.", "Kot ma mleko, a Ala ma kota."}
	tt, err := TrainBPE(context.Background(), slices.Values(texts), BPETrainOptions{VocabSize: 300})
	if err != nil {
		panic(err)
	}
	// tt.WriteDir(dir) writes tokenizer.json and tokenizer_config.json that
	// Load and Hugging Face's tokenizers read. Byte-level BPE writes a space
	// as "Ġ"; training stopped before 300 tokens because no pair was left
	// that occurs twice (MinFrequency).
	fmt.Println(len(tt.Vocab), tt.Merges[:3])

	// Output: 271 [[Ġ m] [k o] [Ġm a]]
}

// BenchmarkTrainBPE times training on the sample corpus (about 290 KB of
// Polish). "vocab4000" is the quickstart's setting. "vs-hf" trains until no
// pair is left (min frequency 1, unbounded vocabulary), the default and only
// configuration of Hugging Face tokenizers' BpeTrainer in its Node binding,
// and in each iteration also runs that trainer in Node on the same text;
// x-hf is pltune's time over HF's. HF's time is measured inside Node around
// train() (it includes reading the 290 KB file); pltune's excludes nothing.
func BenchmarkTrainBPE(b *testing.B) {
	texts := bpeTrainingText(b)
	b.Run("vocab4000", func(b *testing.B) {
		for b.Loop() {
			if _, err := TrainBPE(context.Background(), slices.Values(texts), BPETrainOptions{VocabSize: 4000}); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "train-ms")
	})
	b.Run("vs-hf", func(b *testing.B) {
		modules, _ := filepath.Abs(filepath.Join("..", ".pltune", "npm", "node_modules"))
		if _, err := os.Stat(filepath.Join(modules, "@anush008", "tokenizers")); err != nil {
			b.Skip("@anush008/tokenizers not installed")
		}
		dir := b.TempDir()
		corpusFile := filepath.Join(dir, "train.txt")
		if err := os.WriteFile(corpusFile, []byte(strings.Join(texts, "\n")), 0o644); err != nil {
			b.Fatal(err)
		}
		// An untrained tokenizer.json with the same pipeline as ours.
		tj, err := (&TrainedTokenizer{}).TokenizerJSON()
		if err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "tokenizer.json"), tj, 0o644); err != nil {
			b.Fatal(err)
		}
		const script = `
const {Tokenizer} = require("@anush008/tokenizers");
const tok = Tokenizer.fromFile(process.argv[1] + "/tokenizer.json");
const t0 = process.hrtime.bigint();
tok.train([process.argv[2]]);
const ms = Number(process.hrtime.bigint() - t0) / 1e6;
process.stdout.write(JSON.stringify({ms, vocab: tok.getVocabSize(false)}));`
		var ours, hf time.Duration
		var vocab int
		var res struct {
			MS    float64 `json:"ms"`
			Vocab int     `json:"vocab"`
		}
		for b.Loop() {
			t0 := time.Now()
			tt, err := TrainBPE(context.Background(), slices.Values(texts), BPETrainOptions{VocabSize: 1 << 20, MinFrequency: 1})
			if err != nil {
				b.Fatal(err)
			}
			ours += time.Since(t0)
			vocab = len(tt.Vocab) - tt.Special
			cmd := exec.Command("node", "-e", script, dir, corpusFile)
			cmd.Env = append(os.Environ(), "NODE_PATH="+modules)
			out, err := cmd.Output()
			if err != nil {
				b.Fatalf("node: %v", err)
			}
			if err := json.Unmarshal(out[bytes.LastIndexByte(out, '{'):], &res); err != nil {
				b.Fatalf("node output %q: %v", out, err)
			}
			hf += time.Duration(res.MS * float64(time.Millisecond))
		}
		b.ReportMetric(float64(ours.Milliseconds())/float64(b.N), "train-ms")
		b.ReportMetric(float64(hf.Milliseconds())/float64(b.N), "hf-train-ms")
		b.ReportMetric(ours.Seconds()/hf.Seconds(), "x-hf")
		b.ReportMetric(float64(vocab), "vocab")
		b.ReportMetric(float64(res.Vocab), "hf-vocab")
	})
}
