package corpus

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// benchWords is Polish vocabulary for generated samples.
var benchWords = strings.Fields(`Wisła jest najdłuższą rzeką Polski płynie przez Kraków Warszawę Toruń oraz Gdańsk
uchodzi do Morza Bałtyckiego źródła leżą na stokach Baraniej Góry w Beskidzie Śląskim napisz krótki wiersz
o jesieni w Tatrach złote buki nad Morskim Okiem mgła się snuje cichym krokiem halny gwiżdże nad Giewontem
bitwa pod Grunwaldem odbyła się lipca roku król Władysław Jagiełło wielki książę Witold zaświadczenie
o zatrudnieniu potrzebuję do banku najlepiej do końca tygodnia szanowna pani uprzejmie proszę odpowiedź
zgodnie z zasadami polskiej interpunkcji przecinek przed że który ponieważ gdy żeby mimo że chyba że`)

func benchText(rng *rand.Rand, words int) string {
	var b strings.Builder
	for i := range words {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(benchWords[rng.IntN(len(benchWords))])
	}
	return b.String()
}

// benchJSONL returns n OpenAI-format records of about size bytes each.
func benchJSONL(n, size int) []byte {
	rng := rand.New(rand.NewPCG(1, 2))
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	words := size / 9 // about 7.5 bytes a word plus JSON around it
	for i := range n {
		enc.Encode(openAIRecord{jsonMeta: jsonMeta{ID: rawID(fmt.Sprint("s", i))}, Messages: []jsonMessage{
			{Role: "system", Content: "Jesteś pomocnym asystentem."},
			{Role: "user", Content: benchText(rng, words/3)},
			{Role: "assistant", Content: benchText(rng, words*2/3-8)},
		}})
	}
	return buf.Bytes()
}

// BenchmarkReadValidate reads and validates 1 KB samples. Run with -cpu 1
// for the one-core figure.
func BenchmarkReadValidate(b *testing.B) {
	const n = 20000
	jsonl := benchJSONL(n, 1024)
	var pllumic bytes.Buffer
	w, _ := NewWriter(&pllumic, PLLuMIC)
	r, _ := NewReader(bytes.NewReader(jsonl), "bench", Options{Format: OpenAI})
	for s := range r.Samples(context.Background()) {
		w.WriteSample(&s)
	}
	w.Close()
	for _, tt := range []struct {
		format Format
		data   []byte
	}{{OpenAI, jsonl}, {PLLuMIC, pllumic.Bytes()}} {
		b.Run(string(tt.format), func(b *testing.B) {
			b.SetBytes(int64(len(tt.data)))
			got := 0
			cpu0 := cpuTime()
			for b.Loop() {
				r, err := NewReader(bytes.NewReader(tt.data), "bench", Options{Format: tt.format})
				if err != nil {
					b.Fatal(err)
				}
				for _, err := range r.Samples(context.Background()) {
					if err != nil {
						b.Fatal(err)
					}
					got++
				}
			}
			b.ReportMetric(float64(got)/b.Elapsed().Seconds(), "samples/s")
			// The machine is shared: CPU time shows the cost without the
			// waits for a core.
			b.ReportMetric(float64(got)/(cpuTime()-cpu0).Seconds(), "samples/cpu-s")
			b.ReportMetric(float64(len(tt.data))/float64(n), "bytes/sample")
		})
	}
}

// cpuTime is the CPU time the process has used, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// shortSamples generates n short samples (20–40 words) of which about 5%
// are exact copies and 10% near copies (the last word changed: Jaccard
// 0.92–0.96) of an earlier sample; planted is their number.
func shortSamples(n int) (out []Sample, planted int) {
	rng := rand.New(rand.NewPCG(3, 4))
	out = make([]Sample, n)
	for i := range out {
		r := rng.IntN(100)
		if i > 0 && r < 15 {
			planted++
		}
		switch {
		case i > 0 && r < 5:
			out[i] = out[rng.IntN(i)]
		case i > 0 && r < 15:
			src := out[rng.IntN(i)]
			w := strings.Fields(src.Messages[1].Content)
			w[len(w)-1] = "zmienione"
			out[i] = qa("", src.Messages[0].Content, strings.Join(w, " "))
		default:
			out[i] = qa("", benchText(rng, 8), benchText(rng, 12+rng.IntN(20)))
		}
		out[i].ID = fmt.Sprint("s", i)
	}
	return out, planted
}

// BenchmarkDedup finds exact and near duplicates among 100k and 1M short
// samples on all cores: go test -run XXX -bench Dedup -benchtime 1x ./corpus
func BenchmarkDedup(b *testing.B) {
	for _, n := range []int{100_000, 1_000_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) { benchDedup(b, n) })
	}
}

func benchDedup(b *testing.B, n int) {
	samples, planted := shortSamples(n)
	cpu0 := cpuTime()
	for b.Loop() {
		res, err := Dedup(context.Background(), seqOf(samples), DefaultDedupOptions())
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(res.ExactDuplicates), "exact")
		b.ReportMetric(float64(res.NearDuplicates), "near")
		b.ReportMetric(float64(res.ExactDuplicates+res.NearDuplicates)/float64(planted), "found/planted")
	}
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/run")
	b.ReportMetric((cpuTime()-cpu0).Seconds()/float64(b.N), "cpu-s/run")
}

// genReader produces n JSONL records on the fly, so that the input itself
// takes no memory.
type genReader struct {
	n, i int
	rng  *rand.Rand
	buf  bytes.Buffer
}

func (g *genReader) Read(p []byte) (int, error) {
	for g.buf.Len() < len(p) && g.i < g.n {
		fmt.Fprintf(&g.buf, `{"id":"s%d","messages":[{"role":"user","content":%q},{"role":"assistant","content":%q}]}`+"\n",
			g.i, benchText(g.rng, 30), benchText(g.rng, 90))
		g.i++
	}
	if g.buf.Len() == 0 {
		return 0, io.EOF
	}
	return g.buf.Read(p)
}

// BenchmarkStreamMemory streams 1M generated samples (about 900 bytes
// each, 0.9 GB in all) and reports the live heap after a collection at
// 100k and at 1M samples, and the peak heap in use sampled every 10,000
// samples up to each point: flat figures mean streaming holds nothing per
// sample read.
func BenchmarkStreamMemory(b *testing.B) {
	const n = 1_000_000
	for b.Loop() {
		runtime.GC()
		var peak uint64
		var ms runtime.MemStats
		r, err := NewReader(&genReader{n: n, rng: rand.New(rand.NewPCG(5, 6))}, "gen", Options{Format: OpenAI})
		if err != nil {
			b.Fatal(err)
		}
		got := 0
		for _, err := range r.Samples(context.Background()) {
			if err != nil {
				b.Fatal(err)
			}
			got++
			if got%10000 == 0 {
				runtime.ReadMemStats(&ms)
				peak = max(peak, ms.HeapInuse)
			}
			if got == 100_000 || got == n {
				runtime.GC()
				runtime.ReadMemStats(&ms)
				tag := fmt.Sprintf("%dk", got/1000)
				b.ReportMetric(float64(ms.HeapAlloc)/(1<<20), "live-MiB@"+tag)
				b.ReportMetric(float64(peak)/(1<<20), "peak-MiB@"+tag)
			}
		}
		if got != n {
			b.Fatalf("read %d", got)
		}
	}
}
