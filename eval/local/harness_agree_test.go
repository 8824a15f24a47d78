package local

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pltune/pltune/eval"
	"github.com/pltune/pltune/internal/pyref"
	"github.com/pltune/pltune/train"
)

// agreeTask is one task of the agreement run: a harness task on a testdata
// file, under a name of its own (the same task is run zero- and few-shot).
type agreeTask struct {
	as, task, file string
	shots          int
	upstream       bool   // lm-eval's own definition, not pltune's transcription
	fewshotFile    string // the training split few-shot examples are drawn from
}

var agreeTasks = []agreeTask{
	{"belebele_pol_Latn", "belebele_pol_Latn", "belebele-pol_Latn.jsonl", 0, true, ""},
	{"belebele_pol_Latn_2shot", "belebele_pol_Latn", "belebele-pol_Latn.jsonl", 2, true, ""},
	{"polemo2_in_multiple_choice", "polemo2_in_multiple_choice", "polemo2-in-test.tsv", 0, false, ""},
	{"polemo2_out_multiple_choice", "polemo2_out_multiple_choice", "polemo2-out-test.tsv", 0, false, ""},
	{"polish_8tags_multiple_choice", "polish_8tags_multiple_choice", "8tags-test.jsonl", 0, false, ""},
	// The harness's default sampler: random.Random(1234) over the training
	// split, one generator across the documents.
	{"polish_8tags_multiple_choice_3shot", "polish_8tags_multiple_choice", "8tags-test.jsonl", 3, false, "8tags-train.jsonl"},
	{"polish_belebele_mc", "polish_belebele_mc", "belebele-pol_Latn.jsonl", 0, false, ""},
	{"polish_dyk_multiple_choice", "polish_dyk_multiple_choice", "dyk-test.tsv", 0, false, ""},
	{"polish_ppc_multiple_choice", "polish_ppc_multiple_choice", "ppc-test.jsonl", 0, false, ""},
	{"polish_psc_multiple_choice", "polish_psc_multiple_choice", "psc-test.tsv", 0, false, ""},
	{"polish_cbd_multiple_choice", "polish_cbd_multiple_choice", "cbd-test.jsonl", 0, false, ""},
	{"polish_klej_ner_multiple_choice", "polish_klej_ner_multiple_choice", "nkjp-ner-test.tsv", 0, false, ""},
	{"polish_polqa_reranking_multiple_choice", "polish_polqa_reranking_multiple_choice", "polqa-test.csv", 0, false, ""},
	{"polish_psc_regex", "polish_psc_regex", "psc-test.tsv", 0, false, ""},
}

// llama3Tasks run with Llama-3.1's tokenizer too (its 128k vocabulary makes
// every call four times dearer, so a subset: BPE on bytes splits context
// and continuation differently from Llama-2's SentencePiece).
var llama3Tasks = []string{"belebele_pol_Latn_2shot", "polish_dyk_multiple_choice", "polish_psc_regex"}

type harnessOut struct {
	Version string `json:"lm_eval"`
	Tasks   map[string]struct {
		Metrics map[string]any `json:"metrics"`
		Docs    []struct {
			DocID      int       `json:"doc_id"`
			LLs        []float64 `json:"lls"`
			Context    string    `json:"context"`
			Acc        *float64  `json:"acc"`
			AccNorm    *float64  `json:"acc_norm"`
			Generation string    `json:"generation"`
			Filtered   string    `json:"filtered"`
			ExactMatch *float64  `json:"exact_match"`
		} `json:"docs"`
	} `json:"tasks"`
}

// TestHarnessAgreement runs lm-evaluation-harness's hf backend and pltune
// in process on the same random Llama folder and the same task files:
// the contexts, each choice's log-likelihood (within 1e-4), acc and
// acc_norm per document and overall, and their standard errors must agree.
// Generative tasks are compared and reported, not required to agree (see
// the README: greedy decoding of a random model on two libraries).
func TestHarnessAgreement(t *testing.T) {
	if testing.Short() {
		t.Skip("runs Python's lm-evaluation-harness (about a minute)")
	}
	py := pyref.Require(t)
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	for _, tk := range []string{"tokenizer-llama2", "tokenizer-llama3_1"} {
		t.Run(tk, func(t *testing.T) {
			tokDir := filepath.Join(root, ".pltune", "npm", "node_modules", "@lenml", tk, "models")
			if _, err := os.Stat(filepath.Join(tokDir, "tokenizer.json")); err != nil {
				t.Skipf("no %s (run tokenize/testdata/hf/install.sh): %v", tk, err)
			}
			tasks, noBOS := agreeTasks, false
			if tk == "tokenizer-llama3_1" {
				// Without BOS, as speakleash's fork (lm-eval 0.4.0) encodes
				// and 0.4.13 does with add_bos_token=False.
				noBOS = true
				tasks = nil
				for _, a := range agreeTasks {
					if slices.Contains(llama3Tasks, a.as) {
						tasks = append(tasks, a)
					}
				}
			}
			agree(t, py, root, tokDir, tasks, noBOS)
		})
	}
}

func agree(t *testing.T, py, root, tokDir string, agreeTasks []agreeTask, noBOS bool) {
	dir := t.TempDir()
	modelDir := filepath.Join(dir, "model")
	data := filepath.Join(root, "eval", "testdata", "harness")
	var specTasks []map[string]any
	for _, a := range agreeTasks {
		abs, _ := filepath.Abs(filepath.Join(data, a.file))
		st := map[string]any{"file": abs, "num_fewshot": a.shots, "as": a.as}
		if a.fewshotFile != "" {
			fs, _ := filepath.Abs(filepath.Join(data, a.fewshotFile))
			st["fewshot_file"] = fs
		}
		if a.upstream {
			st["upstream"] = a.task
		} else {
			spec, ok := eval.HarnessTaskByName(a.task)
			if !ok {
				t.Fatalf("no task %s", a.task)
			}
			st["config"] = spec.LMEvalConfig()
		}
		specTasks = append(specTasks, st)
	}
	spec := map[string]any{"tokenizer_dir": tokDir, "model_dir": modelDir, "seed": 0, "tasks": specTasks, "add_bos_token": !noBOS}
	b, _ := json.Marshal(spec)
	specFile, outFile := filepath.Join(dir, "spec.json"), filepath.Join(dir, "out.json")
	if err := os.WriteFile(specFile, b, 0o644); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	cmd := exec.Command(py, filepath.Join("testdata", "harness_agree.py"), specFile, outFile)
	cmd.Env = append(os.Environ(), "HF_HUB_OFFLINE=1", "HF_DATASETS_OFFLINE=1", "HF_DATASETS_CACHE="+filepath.Join(dir, "hf-datasets"), "OMP_NUM_THREADS=2")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("lm-evaluation-harness: %v\n%s", err, tail(out, 4000))
	}
	t.Logf("lm-evaluation-harness run: %.1f s", time.Since(start).Seconds())
	var ref harnessOut
	b, err := os.ReadFile(outFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &ref); err != nil {
		t.Fatal(err)
	}

	m, err := Open(modelDir, train.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	m.NoSpecialTokens = noBOS
	var tasks []*eval.Task
	for _, a := range agreeTasks {
		spec, _ := eval.HarnessTaskByName(a.task)
		docs, err := eval.ReadDocs(filepath.Join(data, a.file))
		if err != nil {
			t.Fatal(err)
		}
		opt := eval.HarnessOptions{NumFewshot: a.shots}
		if a.fewshotFile != "" {
			if opt.Fewshot, err = eval.ReadDocs(filepath.Join(data, a.fewshotFile)); err != nil {
				t.Fatal(err)
			}
		}
		task, err := eval.BuildHarness(spec, docs, a.as, a.file, opt)
		if err != nil {
			t.Fatal(err)
		}
		tasks = append(tasks, task)
	}
	start = time.Now()
	cacheFile := filepath.Join(dir, "cache.jsonl")
	res, err := eval.Run(context.Background(), m, tasks, eval.Options{Concurrency: 1, CacheFile: cacheFile})
	if err != nil {
		t.Fatal(err)
	}
	lines, err := os.ReadFile(cacheFile)
	if err != nil {
		t.Fatal(err)
	}
	cached := map[string][]eval.LoglikelihoodResult{} // task + item → per choice
	for _, l := range strings.Split(strings.TrimSpace(string(lines)), "\n") {
		var r eval.Record
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatal(err)
		}
		cached[r.Task+"\x00"+r.Item] = r.Loglikelihoods
	}
	t.Logf("pltune run: %.1f s", time.Since(start).Seconds())

	maxDiff, lls, genSame, gens := 0.0, 0, 0, 0
	for i, task := range tasks {
		a := agreeTasks[i]
		rt, ok := ref.Tasks[a.as]
		if !ok {
			t.Errorf("%s: the harness returned no results", a.as)
			continue
		}
		tr := &res.Tasks[i]
		if len(rt.Docs) != task.Len() {
			t.Errorf("%s: harness has %d documents, pltune %d", a.as, len(rt.Docs), task.Len())
			continue
		}
		spec := task.Harness.Spec
		for j, d := range rt.Docs {
			hd := task.Harness.Docs[j]
			if strconv.Itoa(d.DocID) != hd.ID {
				t.Errorf("%s: doc %d has id %s", a.as, d.DocID, hd.ID)
			}
			if spec.Output == eval.HarnessGenerateUntil {
				gens++
				if d.Generation == tr.Items[j].Response {
					genSame++
				}
				if d.Filtered != tr.Items[j].Filtered {
					t.Logf("%s doc %d: filtered answers differ: harness %q (from %q), pltune %q (from %q)", a.as, j, d.Filtered, d.Generation, tr.Items[j].Filtered, tr.Items[j].Response)
				}
				continue
			}
			if d.Context != hd.Context {
				t.Errorf("%s doc %d: context\nharness %q\npltune  %q", a.as, j, d.Context, hd.Context)
			}
			got := cached[a.as+"\x00"+hd.ID]
			if len(got) != len(d.LLs) {
				t.Errorf("%s doc %d: pltune has %d log-likelihoods, the harness %d", a.as, j, len(got), len(d.LLs))
				continue
			}
			for k := range got {
				diff := math.Abs(got[k].LogProb - d.LLs[k])
				maxDiff = max(maxDiff, diff)
				lls++
				if diff > 1e-4 {
					t.Errorf("%s doc %d choice %q: log-likelihood pltune %.6f, harness %.6f", a.as, j, spec.Choices[k], got[k].LogProb, d.LLs[k])
				}
			}
			it := tr.Items[j]
			if d.Acc == nil || d.AccNorm == nil || it.Scores["acc"] != *d.Acc || it.Scores["acc_norm"] != *d.AccNorm {
				t.Errorf("%s doc %d: acc/acc_norm pltune %v/%v, harness %v/%v", a.as, j, it.Scores["acc"], it.Scores["acc_norm"], d.Acc, d.AccNorm)
			}
		}
		for _, mv := range tr.Harness.Metrics {
			want, ok := rt.Metrics[mv.Name].(float64)
			if !ok {
				continue // a metric the harness config does not compute (F1)
			}
			if math.Abs(mv.Value-want) > 1e-12 {
				t.Errorf("%s %s: pltune %v, harness %v", a.as, mv.Name, mv.Value, want)
			}
			if se, ok := rt.Metrics[mv.Name+"_stderr"].(float64); ok && math.Abs(mv.Stderr-se) > 1e-9 {
				t.Errorf("%s %s stderr: pltune %v, harness %v", a.as, mv.Name, mv.Stderr, se)
			}
		}
	}
	t.Logf("lm-eval %s (BOS %v): %d log-likelihoods, largest difference %.2g; generations identical %d of %d", ref.Version, !noBOS, lls, maxDiff, genSame, gens)
	fmt.Fprintf(os.Stderr, "harness agreement (%s, BOS %v): %d log-likelihoods, max |Δ| %.2g; generations identical %d/%d\n", filepath.Base(filepath.Dir(tokDir)), !noBOS, lls, maxDiff, genSame, gens)
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
