package tokenize

import (
	"testing"
)

// benchCorpus is the longer golden strings (mostly Polish paragraphs).
// bench/tokenize/run.sh measures on real Polish text beside HF.
func benchCorpus(b *testing.B, name string) []string {
	var texts []string
	for _, g := range readGoldens(b, name) {
		if len(g.S) > 200 {
			texts = append(texts, g.S)
		}
	}
	return texts
}

func BenchmarkEncode(b *testing.B) {
	for _, name := range referenceTokenizers {
		b.Run(name, func(b *testing.B) {
			tk := testTokenizer(b, name)
			texts := benchCorpus(b, name)
			tokens, bytes := 0, 0
			for _, s := range texts {
				tokens += len(tk.Encode(s, false))
				bytes += len(s)
			}
			b.SetBytes(int64(bytes))
			b.ResetTimer()
			for b.Loop() {
				for _, s := range texts {
					tk.Encode(s, false)
				}
			}
			b.ReportMetric(float64(tokens)*float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
		})
	}
}

func BenchmarkEncodeBatch(b *testing.B) {
	tk := testTokenizer(b, "llama3_1")
	texts := benchCorpus(b, "llama3_1")
	tokens := 0
	for _, ids := range tk.EncodeBatch(texts, false) {
		tokens += len(ids)
	}
	b.ResetTimer()
	for b.Loop() {
		tk.EncodeBatch(texts, false)
	}
	b.ReportMetric(float64(tokens)*float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
}

func BenchmarkEncodeWithOffsets(b *testing.B) {
	tk := testTokenizer(b, "llama3_1")
	texts := benchCorpus(b, "llama3_1")
	b.ResetTimer()
	for b.Loop() {
		for _, s := range texts {
			tk.EncodeWithOffsets(s, false)
		}
	}
}

func BenchmarkLoad(b *testing.B) {
	for _, name := range referenceTokenizers {
		b.Run(name, func(b *testing.B) {
			dir := testTokenizerDir(b, name)
			for b.Loop() {
				if _, err := Load(dir); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
