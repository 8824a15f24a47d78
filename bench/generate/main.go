// Command generate measures batched greedy generation: pltune's
// Model.Generate (preallocated KV cache, one forward call per new token for
// the batch) side by side with transformers' model.generate on the same
// small random Llama (vocab 32,000, hidden 256, 4 layers, 8 heads, 4 KV
// heads, MLP 688; transformers creates and saves it), fp32 on the CPU, a
// batch of Polish prompts of different lengths, left-padded, and no stop
// id, so every row decodes -new tokens. transformers decodes in its own
// process with its default attention (SDPA), pltune in this one, with the
// same thread count; the sides take turns for -rounds rounds of -repeats
// timed runs (each side warmed up first), so a change in the machine's load
// hits both. It reports each side's new tokens per second (median run),
// their ratio, each process's peak RSS, and whether the two produced the
// same token ids (transformers' eager attention in fp32, the parity run).
//
//	go run ./bench/generate [-batch 8] [-new 64] [-rounds 3] [-repeats 2] [-threads N] [-size small]
//
// transformers comes from the reference venv (internal/scripts/pyref.sh),
// the Llama 2 tokenizer from tokenize/testdata/hf/install.sh.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"time"

	"github.com/pltune/pltune/internal/benchutil"
	"github.com/pltune/pltune/internal/pyref"
	"github.com/pltune/pltune/internal/torchx"
	"github.com/pltune/pltune/tokenize"
	"github.com/pltune/pltune/train"
)

// prompts are the batch's texts, cycled when -batch is larger.
var prompts = []string{
	"Wczoraj w Krakowie padał deszcz, więc zostaliśmy w domu i",
	"Źródłem błędu okazała się",
	"Proszę podać trzy przykłady polskich rzek oraz miasta, przez które przepływają, a potem",
	"Zażółć gęślą jaźń.",
	"Mikołaj Kopernik urodził się w Toruniu w 1473 roku, a studiował w",
	"Stolicą Polski jest Warszawa, a",
	"Na śniadanie zjadłem jajecznicę ze szczypiorkiem i wypiłem kawę, po czym wyszedłem do pracy, gdzie",
	"Ala ma kota.",
}

type hfResult struct {
	Free         [][]int   `json:"free"`
	BenchSeconds []float64 `json:"bench_seconds"`
	TorchThreads int       `json:"torch_threads"`
	PeakRSSKB    int       `json:"peak_rss_kb"`
}

func main() {
	batch := flag.Int("batch", 8, "prompts decoded together")
	newTokens := flag.Int("new", 64, "new tokens per prompt")
	rounds := flag.Int("rounds", 3, "rounds; each times both sides")
	repeats := flag.Int("repeats", 2, "timed runs per round and side")
	threads := flag.Int("threads", runtime.NumCPU(), "libtorch intra-op threads, for both sides")
	size := flag.String("size", "small", "model: small (hidden 256, 4 layers) or tiny (hidden 64, 2 layers)")
	flag.Parse()
	if err := run(*batch, *newTokens, *rounds, *repeats, *threads, *size); err != nil {
		fmt.Fprintln(os.Stderr, "bench/generate:", err)
		os.Exit(1)
	}
}

func run(batch, newTokens, rounds, repeats, threads int, size string) error {
	if batch < 1 || newTokens < 1 || rounds < 1 || repeats < 1 || threads < 1 {
		return fmt.Errorf("-batch %d, -new %d, -rounds %d, -repeats %d, -threads %d: want all positive", batch, newTokens, rounds, repeats, threads)
	}
	py, err := pyref.Python()
	if err != nil {
		return err
	}
	tdir, err := pyref.TokenizerDir("llama2")
	if err != nil {
		return err
	}
	tok, err := tokenize.Load(filepath.Join(tdir, "tokenizer.json"))
	if err != nil {
		return err
	}
	ids := make([][]int, batch)
	for i := range ids {
		ids[i] = tok.Encode(prompts[i%len(prompts)], true)
	}
	dir, err := os.MkdirTemp("", "pltune-bench-generate")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	_, file, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(file), "..", "..", "train", "testdata", "hfparity", "generate.py")
	hfRun := func(benchOnly bool) (*hfResult, error) {
		req, _ := json.Marshal(map[string]any{"dir": dir, "vocab": tok.VocabSize(), "prompts": ids, "max_new_tokens": newTokens,
			"pad": 0, "size": size, "bench": repeats, "threads": threads, "bench_only": benchOnly})
		reqPath := filepath.Join(dir, "request.json")
		if err := os.WriteFile(reqPath, req, 0o644); err != nil {
			return nil, err
		}
		c := exec.Command(py, script, reqPath)
		c.Env = append(os.Environ(), "HF_HUB_OFFLINE=1", "TRANSFORMERS_VERBOSITY=error", "TQDM_DISABLE=1")
		if out, err := c.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("generate.py: %v\n%s", err, out)
		}
		raw, err := os.ReadFile(filepath.Join(dir, "hf_generate.json"))
		if err != nil {
			return nil, err
		}
		var res hfResult
		return &res, json.Unmarshal(raw, &res)
	}
	// transformers makes and saves the model, decodes it for parity (eager
	// attention) and times its first round.
	hf, err := hfRun(false)
	if err != nil {
		return err
	}
	hfTimes, hfRSS := hf.BenchSeconds, hf.PeakRSSKB

	torchx.SetNumThreads(threads)
	m, err := train.LoadModel(dir, train.ModelOptions{})
	if err != nil {
		return err
	}
	defer m.Drop()
	opts := train.GenerateOptions{MaxNewTokens: newTokens, StopIDs: []int{}}
	ctx := context.Background()
	got, err := m.Generate(ctx, ids, opts) // also the warm-up
	if err != nil {
		return err
	}
	var times []float64
	for r := range rounds {
		if r > 0 {
			h, err := hfRun(true)
			if err != nil {
				return err
			}
			hfTimes, hfRSS = append(hfTimes, h.BenchSeconds...), max(hfRSS, h.PeakRSSKB)
		}
		for range repeats {
			t0 := time.Now()
			if _, err := m.Generate(ctx, ids, opts); err != nil {
				return err
			}
			times = append(times, time.Since(t0).Seconds())
		}
	}
	same := 0
	for i := range ids {
		if slices.Equal(got[i], hf.Free[i]) {
			same++
		}
	}
	lens := make([]int, len(ids))
	for i, p := range ids {
		lens[i] = len(p)
	}
	n := float64(batch * newTokens)
	plT, hfT := benchutil.Median(times), benchutil.Median(hfTimes)
	fmt.Printf("model %s, batch %d, prompts of %v tokens (left-padded), %d new tokens each, fp32 CPU, %d threads (transformers: %d)\n",
		size, batch, lens, newTokens, threads, hf.TorchThreads)
	fmt.Printf("pltune       %8.1f tokens/s  runs %s  peak RSS %d MiB\n", n/plT, benchutil.FormatTimes(times), benchutil.PeakRSSKB()/1024)
	fmt.Printf("transformers %8.1f tokens/s  runs %s  peak RSS %d MiB\n", n/hfT, benchutil.FormatTimes(hfTimes), hfRSS/1024)
	fmt.Printf("throughput ratio pltune/transformers %.2f; same token ids in %d of %d rows\n", hfT/plT, same, batch)
	return nil
}
