package tokenize

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pltune/pltune/corpus"
)

// benchConversations reads the embedded organic sample corpus (PLLuMIC
// layout) as plain conversations.
func benchConversations(b *testing.B) [][]corpus.Message {
	b.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "corpus", "samples", "data", "organic.json"))
	if err != nil {
		b.Skipf("no sample corpus: %v", err)
	}
	var convs []struct {
		Messages []corpus.Message `json:"messages"`
	}
	if err := json.Unmarshal(raw, &convs); err != nil {
		b.Fatal(err)
	}
	var out [][]corpus.Message
	for _, c := range convs {
		var msgs []corpus.Message
		for _, m := range c.Messages {
			if m.Content != "" || m.Role != corpus.RoleSystem {
				msgs = append(msgs, m)
			}
		}
		out = append(out, msgs)
	}
	return out
}

// BenchmarkSFT compares building labelled SFT sequences with the least any
// tokenization must do: rendering each conversation once and encoding it
// (what apply_chat_template(tokenize=True) does). The two passes over the
// corpus alternate within each iteration, so the machine's noise hits both
// alike; x-encode is the ratio, the cost of finding the trained spans.
func BenchmarkSFT(b *testing.B) {
	convs := benchConversations(b)
	for _, pkg := range []string{"tokenizer-llama3_1", "tokenizer-qwen3", "tokenizer-llama2"} {
		b.Run(pkg, func(b *testing.B) {
			tok := sftRealTokenizer(b, pkg)
			builder, err := NewSFTBuilder(tok, SFTOptions{})
			if err != nil {
				b.Fatal(err)
			}
			tokens := 0
			for _, c := range convs {
				s, err := builder.BuildMessages(c)
				if err != nil {
					b.Fatal(err)
				}
				tokens += s.Len()
			}
			var encode, sft time.Duration
			for b.Loop() {
				t0 := time.Now()
				for _, c := range convs {
					full, err := builder.tmpl.Render(c, false)
					if err != nil {
						b.Fatal(err)
					}
					tok.Encode(full, false)
				}
				t1 := time.Now()
				for _, c := range convs {
					if _, err := builder.BuildMessages(c); err != nil {
						b.Fatal(err)
					}
				}
				encode += t1.Sub(t0)
				sft += time.Since(t1)
			}
			b.ReportMetric(float64(tokens*b.N)/sft.Seconds(), "sft-tokens/s")
			b.ReportMetric(float64(tokens*b.N)/encode.Seconds(), "encode-tokens/s")
			b.ReportMetric(sft.Seconds()/encode.Seconds(), "x-encode")
		})
	}
}
