// Command trl times training steps of pltune side by side with TRL's
// trainers on the same tiny Llama (vocab 32,000, hidden 256, 4 layers, 8
// heads, 2 KV heads, MLP 688; fp32, CPU) and the same libtorch (PyTorch
// 2.11's: build pltune against it with `LIBTORCH=$(internal/scripts/pyref.sh
// --torch) make setup`; TRL runs in the reference venv):
//
//   - SFT: batch 4 × 256 tokens, next-token loss on every token: pltune's
//     trainer vs TRL's SFTTrainer (transformers eager attention,
//     torch.optim.AdamW, clipping at 1.0);
//   - ORPO: batch 2 pairs of Polish text (prompt + chosen, prompt +
//     rejected, about 250 tokens each): pltune's align.ORPO vs TRL's
//     ORPOTrainer.
//
// Each side runs in its own process with the same thread count; a step is
// timed from the end of one optimizer step to the end of the next, data
// loading included, on both sides. The sides take turns, round by round:
//
//	go run ./bench/trl [-steps 4] [-rounds 2] [-threads N]
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"github.com/pltune/pltune/align"
	"github.com/pltune/pltune/internal/benchutil"
	"github.com/pltune/pltune/internal/pyref"
	"github.com/pltune/pltune/internal/torchx"
	"github.com/pltune/pltune/tokenize"
	"github.com/pltune/pltune/train"
)

// job is one side's work, passed to its process as JSON.
type job struct {
	Kind      string `json:"kind"` // "sft" or "orpo"
	Vocab     int    `json:"vocab"`
	Hidden    int    `json:"hidden"`
	Layers    int    `json:"layers"`
	Heads     int    `json:"heads"`
	KVHeads   int    `json:"kv_heads"`
	MLP       int    `json:"mlp"`
	Batch     int    `json:"batch"`
	Seq       int    `json:"seq"`
	Steps     int    `json:"steps"`
	Warmup    int    `json:"warmup"`
	Threads   int    `json:"threads"`
	Tokenizer string `json:"tokenizer"`
	// ORPO's texts, the same on both sides.
	Prompt   string `json:"prompt"`
	Chosen   string `json:"chosen"`
	Rejected string `json:"rejected"`
}

type result struct {
	TimesS    []float64 `json:"times_s"`
	PeakRSSKB int       `json:"peak_rss_kb"`
	Tokens    int       `json:"tokens_per_step"`
}

// Polish texts for ORPO, long enough for about 60 prompt and 190 answer
// tokens with Mistral's tokenizer.
const (
	prompt = "Jesteś pomocnym asystentem. Przeczytaj uważnie pytanie i odpowiedz wyczerpująco, po polsku, " +
		"pełnymi zdaniami. Pytanie: jakie są najważniejsze przyczyny i skutki powodzi na terenach nadrzecznych?"
	chosen = "Powodzie na terenach nadrzecznych mają kilka głównych przyczyn. Pierwszą są długotrwałe, intensywne " +
		"opady deszczu, po których gleba nie jest w stanie wchłonąć więcej wody. Drugą jest gwałtowne topnienie " +
		"śniegu wiosną, zwłaszcza w górach. Trzecią stanowi zabudowa terenów zalewowych i uszczelnianie gruntu " +
		"betonem oraz asfaltem, przez co woda spływa szybciej do rzek. Skutki bywają poważne: zniszczone domy, " +
		"drogi i mosty, straty w rolnictwie, skażenie wody pitnej, a czasem ofiary w ludziach. Ograniczają je " +
		"zbiorniki retencyjne, wały przeciwpowodziowe, renaturyzacja rzek oraz dobre systemy ostrzegania."
	rejected = "Powodzie zdarzają się, bo rzeki czasem mają za dużo wody. To wszystko. Nie ma sensu się nad tym " +
		"zastanawiać, bo i tak nic nie da się zrobić, a ludzie, którzy mieszkają nad rzeką, sami są sobie winni. " +
		"Skutki są różne, ale zwykle woda po kilku dniach opada i wszystko wraca do normy, więc nie ma się czym " +
		"przejmować. Najlepiej po prostu poczekać, aż przejdzie, i nie czytać wiadomości, które tylko straszą. " +
		"Zresztą w telewizji zawsze przesadzają z tymi obrazkami zalanych ulic i domów."
)

func main() {
	j := job{Vocab: 32000, Hidden: 256, Layers: 4, Heads: 8, KVHeads: 2, MLP: 688, Seq: 256, Warmup: 1,
		Prompt: prompt, Chosen: chosen, Rejected: rejected}
	flag.IntVar(&j.Steps, "steps", 4, "timed steps per round and side (after one warm-up step)")
	rounds := flag.Int("rounds", 2, "rounds; each times both sides")
	flag.IntVar(&j.Threads, "threads", runtime.NumCPU(), "libtorch intra-op threads, for both sides")
	kinds := flag.String("kinds", "sft,orpo", "what to compare")
	worker := flag.String("worker", "", "internal: run pltune's side of this job (JSON)")
	flag.Parse()
	var err error
	if *worker != "" {
		err = work(*worker)
	} else {
		err = compare(j, strings.Split(*kinds, ","), *rounds)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/trl:", err)
		os.Exit(1)
	}
}

func compare(j job, kinds []string, rounds int) error {
	py, err := pyref.Python()
	if err != nil {
		return err
	}
	root, err := pyref.Root()
	if err != nil {
		return err
	}
	if j.Tokenizer, err = pyref.TokenizerDir("llama2"); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	script := filepath.Join(root, "bench", "trl", "trl_step.py")
	for _, kind := range kinds {
		j.Kind, j.Batch = kind, 4
		if kind == "orpo" {
			j.Batch = 2
		}
		args, _ := json.Marshal(j)
		times := map[string][]float64{}
		rss := map[string]int{}
		tokens := 0
		for r := range rounds {
			for _, side := range []string{"pltune", "TRL"} {
				cmd := exec.Command(self, "-worker", string(args))
				if side == "TRL" {
					cmd = exec.Command(py, script, string(args))
					cmd.Env = append(os.Environ(), "HF_HUB_OFFLINE=1", "TRANSFORMERS_VERBOSITY=error", "TQDM_DISABLE=1",
						"TRL_EXPERIMENTAL_SILENCE=1", "OMP_NUM_THREADS="+strconv.Itoa(j.Threads))
				}
				var out bytes.Buffer
				cmd.Stdout, cmd.Stderr = &out, os.Stderr
				if err := cmd.Run(); err != nil {
					return fmt.Errorf("%s %s side: %w", kind, side, err)
				}
				lines := strings.Split(strings.TrimSpace(out.String()), "\n")
				var res result
				if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
					return fmt.Errorf("%s %s side printed %q: %w", kind, side, out.String(), err)
				}
				fmt.Printf("%s round %d %-6s step %s  %d tokens/step  peak RSS %d MB\n", kind, r+1, side, benchutil.FormatTimes(res.TimesS), res.Tokens, res.PeakRSSKB/1024)
				times[side] = append(times[side], res.TimesS...)
				rss[side] = max(rss[side], res.PeakRSSKB)
				if side == "pltune" {
					tokens = res.Tokens
				}
			}
		}
		g, p := benchutil.Median(times["pltune"]), benchutil.Median(times["TRL"])
		fmt.Printf("\n%s, tiny Llama, batch %d (%d tokens/step), %d threads, medians over %d steps each:\n", kind, j.Batch, tokens, j.Threads, len(times["pltune"]))
		fmt.Printf("  pltune %.3f s   peak RSS %d MB\n  TRL    %.3f s   peak RSS %d MB\n", g, rss["pltune"]/1024, p, rss["TRL"]/1024)
		fmt.Printf("  time ratio pltune/TRL %.2f   peak RSS ratio %.2f\n\n", g/p, float64(rss["pltune"])/float64(rss["TRL"]))
	}
	return nil
}

// work runs pltune's side for Warmup+Steps optimizer steps.
func work(arg string) error {
	var j job
	if err := json.Unmarshal([]byte(arg), &j); err != nil {
		return err
	}
	torchx.SetNumThreads(j.Threads)
	cfg, err := train.ParseConfig(fmt.Appendf(nil, `{"architectures":["LlamaForCausalLM"],"vocab_size":%d,"hidden_size":%d,
		"intermediate_size":%d,"num_hidden_layers":%d,"num_attention_heads":%d,"num_key_value_heads":%d,
		"rms_norm_eps":1e-5,"rope_theta":500000,"max_position_embeddings":1024}`, j.Vocab, j.Hidden, j.MLP, j.Layers, j.Heads, j.KVHeads))
	if err != nil {
		return err
	}
	m, err := train.NewModel(cfg, train.ModelOptions{Seed: 1})
	if err != nil {
		return err
	}
	n := j.Warmup + j.Steps
	var obj train.Objective
	tokens := 0
	switch j.Kind {
	case "sft":
		r := rand.New(rand.NewPCG(1, 2))
		rows := make([]tokenize.PackedRow, j.Batch*n)
		for i := range rows {
			var row tokenize.PackedRow
			for t := range j.Seq {
				id := r.IntN(j.Vocab)
				row.IDs, row.Labels = append(row.IDs, id), append(row.Labels, id)
				row.PositionIDs, row.SegmentIDs = append(row.PositionIDs, t), append(row.SegmentIDs, 1)
			}
			rows[i] = row
		}
		obj, tokens = train.NewLMObjective(m, rows, 0), j.Batch*j.Seq
	case "orpo":
		tok, err := tokenize.Load(filepath.Join(j.Tokenizer, "tokenizer.json"))
		if err != nil {
			return err
		}
		bos, _ := tok.TokenToID("<s>")
		eos, _ := tok.TokenToID("</s>")
		// As TRL's ORPO tokenizes: BOS, the prompt, the answer, EOS; the
		// prompt not trained.
		p := append([]int{bos}, tok.Encode(j.Prompt, false)...)
		seq := func(answer string) tokenize.Sequence {
			ids := append(append(slices.Clone(p), tok.Encode(answer, false)...), eos)
			labels := slices.Clone(ids)
			for i := range p {
				labels[i] = tokenize.IgnoreIndex
			}
			return tokenize.Sequence{IDs: ids, Labels: labels}
		}
		pairs := make([]tokenize.PreferenceExample, j.Batch*n)
		for i := range pairs {
			pairs[i] = tokenize.PreferenceExample{Chosen: seq(j.Chosen), Rejected: seq(j.Rejected), PromptLen: len(p)}
		}
		tokens = j.Batch * (pairs[0].Chosen.Len() + pairs[0].Rejected.Len())
		if obj, err = align.NewORPO(m, pairs, 0, align.ORPOConfig{Beta: 0.1, NLLOnPrompt: true}); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unknown kind %q", j.Kind)
	}
	dir, err := os.MkdirTemp("", "pltune-bench-trl")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	tc := train.DefaultTrainerConfig()
	tc.OutDir, tc.MaxSteps, tc.BatchSize, tc.NoFinalCheckpoint = dir, n, j.Batch, true
	tc.Epochs, tc.WarmupRatio = 1, 0
	steps := benchutil.NewStepTimes(j.Warmup)
	tc.OnStep = func(rec train.StepRecord) { steps.Observe(rec.Step) }
	tr, err := train.NewTrainer(tc, m.NamedParameters(), obj, nil)
	if err != nil {
		return err
	}
	if _, err := tr.Run(context.Background()); err != nil {
		return err
	}
	out, _ := json.Marshal(result{TimesS: steps.Times, PeakRSSKB: benchutil.PeakRSSKB(), Tokens: tokens})
	fmt.Println(string(out))
	return nil
}
