package eval

import (
	"context"
	"errors"
	"math"
	"path/filepath"
	"strings"
	"testing"
)

func harnessTask(t *testing.T, name, file string, opt HarnessOptions) *Task {
	t.Helper()
	spec, ok := HarnessTaskByName(name)
	if !ok {
		t.Fatalf("no task %s", name)
	}
	task, err := ReadHarnessFile(spec, filepath.Join("testdata", "harness", file), opt)
	if err != nil {
		t.Fatal(err)
	}
	return task
}

// TestHarnessReadsPublishedFiles renders the first document of each task
// from a file in its dataset's layout; the expected prompts are the
// YAMLs' doc_to_text with the fields filled in by hand.
func TestHarnessReadsPublishedFiles(t *testing.T) {
	tests := []struct {
		task, file string
		docs       int
		context    string
		gold       int
		target     string
	}{
		{"polemo2_in_multiple_choice", "polemo2-in-test.tsv", 5,
			"Opinia: \"Lekarz bardzo miły i cierpliwy, wszystko dokładnie wytłumaczył. Polecam z czystym sercem.\"\nOkreśl sentyment podanej opinii: Neutralny, Negatywny, Pozytywny, Niejednoznaczny.\nSentyment:", 2, ""},
		{"polemo2_out", "polemo2-out-test.tsv", 3,
			"Opinia: \"Wykładowca mówi monotonnie i nie odpowiada na maile, a egzamin nie ma nic wspólnego z wykładem.\"\nOkreśl sentyment podanej opinii. Możliwe odpowiedzi:\nA - Neutralny\nB - Negatywny\nC - Pozytywny\nD - Niejednoznaczny\nPrawidłowa odpowiedź:", 0, "B"},
		{"polish_8tags_multiple_choice", "8tags-test.jsonl", 8,
			"Tytuł: \"Nowy film Agnieszki Holland zdobył nagrodę na festiwalu w Wenecji.\"\nDo podanego tytułu przyporządkuj jedną najlepiej pasującą kategorię z podanych: Film, Historia, Jedzenie, Medycyna, Motoryzacja, Praca, Sport, Technologie.\nKategoria:", 0, ""},
		{"polish_belebele_mc", "belebele-pol_Latn.jsonl", 4,
			"Fragment: \"Wisła jest najdłuższą rzeką Polski. Wypływa na stokach Baraniej Góry w Beskidzie Śląskim i uchodzi do Zatoki Gdańskiej.\"\nPytanie: \"Gdzie uchodzi Wisła?\"\nMożliwe odpowiedzi:\nA - Do Zatoki Gdańskiej\nB - Do Zalewu Szczecińskiego\nC - Do Odry\nD - Do Bugu\nPrawidłowa odpowiedź:", 0, ""},
		{"belebele_pol_Latn", "belebele-pol_Latn.jsonl", 4,
			"P: Wisła jest najdłuższą rzeką Polski. Wypływa na stokach Baraniej Góry w Beskidzie Śląskim i uchodzi do Zatoki Gdańskiej.\nQ: Gdzie uchodzi Wisła?\nA: Do Zatoki Gdańskiej\nB: Do Zalewu Szczecińskiego\nC: Do Odry\nD: Do Bugu\nAnswer:", 0, ""},
		{"polish_dyk_multiple_choice", "dyk-test.tsv", 4,
			"Pytanie: \"który polski astronom ogłosił teorię heliocentryczną?\"\nSugerowana odpowiedź: \"Mikołaj Kopernik ogłosił teorię heliocentryczną w dziele „O obrotach sfer niebieskich”.\"\nPytanie: Czy sugerowana odpowiedź na zadane pytanie jest poprawna?\nOdpowiedz krótko \"Tak\" lub \"Nie\". Prawidłowa odpowiedź:", 1, ""},
		{"polish_dyk_regex", "dyk-test.tsv", 4, "", 0, "C"},
		{"polish_ppc_multiple_choice", "ppc-test.jsonl", 3,
			"Zdanie A: \"Pociąg do Krakowa odjeżdża o siódmej rano.\"\nZdanie B: \"O siódmej rano odjeżdża pociąg do Krakowa.\"\nPytanie: jaka jest zależność między zdaniami A i B? Możliwe odpowiedzi:\nA - znaczą dokładnie to samo\nB - mają podobne znaczenie\nC - mają różne znaczenie\nPrawidłowa odpowiedź:", 0, ""},
		{"polish_ppc_regex", "ppc-test.jsonl", 3, "", 0, "B"},
		{"polish_psc_multiple_choice", "psc-test.tsv", 3, "", 1, ""},
		{"polish_psc_regex", "psc-test.tsv", 3, "", 0, "C"},
		{"polish_cbd_multiple_choice", "cbd-test.jsonl", 4,
			"Wypowiedź: \"@anonymized_account Dzięki za info, jutro sprawdzę.\"\nDo podanej wypowiedzi przyporządkuj jedną, najlepiej pasującą kategorię z podanych: nieszkodliwa, szyderstwo, obelga, insynuacja, groźba, molestowanie.\nKategoria:", 0, ""},
		{"polish_cbd_regex", "cbd-test.jsonl", 4, "", 0, "A"},
		{"polish_klej_ner_multiple_choice", "nkjp-ner-test.tsv", 4, "", 1, ""},
		{"polish_klej_ner_regex", "nkjp-ner-test.tsv", 4, "", 0, "B"},
		{"polish_8tags_regex", "8tags-test.jsonl", 8, "", 0, "A"},
		{"polish_belebele_regex", "belebele-pol_Latn.jsonl", 4, "", 0, "A"},
		{"polemo2_in", "polemo2-in-test.tsv", 5, "", 0, "C"},
		{"polish_polqa_reranking_multiple_choice", "polqa-test.csv", 2,
			"Kontekst: „Lalka” – powieść Bolesława Prusa, wydana w 1890 roku. \n Pytanie: Kto napisał Lalkę? \n Czy kontekst jest relewantny dla pytania? \n Odpowiedz krótko \"Tak\" lub \"Nie\". Prawidłowa odpowiedź:", 1, ""},
	}
	for _, tt := range tests {
		task := harnessTask(t, tt.task, tt.file, HarnessOptions{})
		if task.Kind != KindHarness || task.Len() != tt.docs {
			t.Errorf("%s: kind %s, %d docs; want %d", tt.task, task.Kind, task.Len(), tt.docs)
			continue
		}
		d := task.Harness.Docs[0]
		if tt.context != "" && d.Context != tt.context {
			t.Errorf("%s: context\n%q\nwant\n%q", tt.task, d.Context, tt.context)
		}
		if d.Gold != tt.gold || d.Target != tt.target {
			t.Errorf("%s: gold %d target %q; want %d %q", tt.task, d.Gold, d.Target, tt.gold, tt.target)
		}
	}
	// Belebele's question is stripped upstream ({{question.strip()}}), not
	// in the fork's Polish prompt.
	up := harnessTask(t, "belebele_pol_Latn", "belebele-pol_Latn.jsonl", HarnessOptions{})
	if !strings.Contains(up.Harness.Docs[1].Context, "\nQ: Gdzie Kopernik spędził większość życia?\nA:") {
		t.Errorf("upstream belebele did not strip the question: %q", up.Harness.Docs[1].Context)
	}
	pl := harnessTask(t, "polish_belebele_mc", "belebele-pol_Latn.jsonl", HarnessOptions{})
	if !strings.Contains(pl.Harness.Docs[1].Context, "Pytanie: \" Gdzie Kopernik spędził większość życia? \"") {
		t.Errorf("fork belebele changed the question: %q", pl.Harness.Docs[1].Context)
	}
}

func TestHarnessFewshot(t *testing.T) {
	// Belebele draws its examples from the test split, first_n: doc 0 gets
	// docs 1 and 2, doc 1 gets docs 0 and 2 (never itself).
	task := harnessTask(t, "belebele_pol_Latn", "belebele-pol_Latn.jsonl", HarnessOptions{NumFewshot: 2})
	c0, c1 := task.Harness.Docs[0].Context, task.Harness.Docs[1].Context
	if n := strings.Count(c0, "\nAnswer:"); n != 3 {
		t.Fatalf("doc 0 has %d questions; want 2 examples and itself:\n%s", n, c0)
	}
	if !strings.HasPrefix(c0, "P: Kopernik studiował") || !strings.Contains(c0, "Answer: C\n\nP: Pierwsza linia metra") || !strings.Contains(c0, "Answer: D\n\nP: Wisła") {
		t.Errorf("doc 0's examples are not docs 1 and 2 with their answers:\n%s", c0)
	}
	if !strings.HasPrefix(c1, "P: Wisła") || !strings.Contains(c1, "Answer: A\n\nP: Pierwsza") {
		t.Errorf("doc 1's examples are not docs 0 and 2:\n%s", c1)
	}
	// A task with a training split draws its examples as the harness's
	// default sampler: random.Random(1234).sample(range(3), 1) for each
	// document in turn gives [1], [0], [0], [0], [2] (CPython 3.11).
	docs, err := ReadDocs(filepath.Join("testdata", "harness", "polemo2-out-test.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	task = harnessTask(t, "polemo2_in_multiple_choice", "polemo2-in-test.tsv", HarnessOptions{NumFewshot: 1, Fewshot: docs})
	want := "Opinia: \"Świetna książka, przeczytałam ją w dwa wieczory i od razu kupiłam kolejny tom.\"\nOkreśl sentyment podanej opinii: Neutralny, Negatywny, Pozytywny, Niejednoznaczny.\nSentyment: Pozytywny\n\nOpinia: \"Lekarz"
	if !strings.HasPrefix(task.Harness.Docs[0].Context, want) {
		t.Errorf("few-shot context:\n%s", task.Harness.Docs[0].Context)
	}
	for i, k := range []int{1, 0, 0, 0, 2} {
		first := strings.SplitN(docs[k]["sentence"], " ", 2)[0]
		if !strings.HasPrefix(task.Harness.Docs[i].Context, "Opinia: \""+first) {
			t.Errorf("doc %d: example is not training doc %d:\n%s", i, k, task.Harness.Docs[i].Context)
		}
	}
	spec, _ := HarnessTaskByName("polemo2_in_multiple_choice")
	if _, err := ReadHarnessFile(spec, filepath.Join("testdata", "harness", "polemo2-in-test.tsv"), HarnessOptions{NumFewshot: 1}); err == nil || !strings.Contains(err.Error(), "few-shot file") {
		t.Errorf("few-shot without a file: %v", err)
	}
}

func TestHarnessFilter(t *testing.T) {
	spec, _ := HarnessTaskByName("polemo2_in")
	tests := map[string]string{
		" B":                         "B",
		" C - Pozytywny":             "C",
		"Odpowiedź: D":               "D",
		" Myślę, że A":               "A",
		"":                           "[invalid]",
		" ABC":                       "[invalid]",
		" E":                         "[invalid]",
		" AŁA, to boli":              "[invalid]", // Python's \b sees Ł as a letter
		" ĄB C":                      "C",
		" Niejednoznaczny (D)":       "D",
		" zdecydowanie B lub może C": "B",
	}
	for in, want := range tests {
		if got := spec.FilterAnswer(in); got != want {
			t.Errorf("FilterAnswer(%q) = %q; want %q", in, got, want)
		}
	}
}

// scriptedModel answers harness requests from tables keyed by a substring
// of the prompt.
type scriptedModel struct {
	lls  map[string][]float64 // context substring → log-prob per choice
	gens map[string]string    // prompt substring → completion
}

func (m *scriptedModel) Name() string { return "scripted" }

func (m *scriptedModel) Loglikelihood(_ context.Context, reqs []LoglikelihoodRequest) ([]LoglikelihoodResult, error) {
	out := make([]LoglikelihoodResult, len(reqs))
	choice := map[string]int{}
	for i, r := range reqs {
		for k, v := range m.lls {
			if strings.Contains(r.Context, k) {
				out[i].LogProb = v[choice[r.Context]]
			}
		}
		choice[r.Context]++
	}
	return out, nil
}

func (m *scriptedModel) Generate(_ context.Context, reqs []GenerateRequest) ([]Generation, error) {
	out := make([]Generation, len(reqs))
	for i, r := range reqs {
		if len(r.Messages) > 0 || r.Prompt == "" || len(r.Stop) == 0 || r.MaxTokens != 50 {
			return nil, errors.New("harness generation must be a raw prompt with the task's until and max_gen_toks")
		}
		for k, v := range m.gens {
			if strings.Contains(r.Prompt, k) {
				out[i].Text = v
			}
		}
	}
	return out, nil
}

func metricOf(t *testing.T, tr *TaskResult, name string) MetricValue {
	t.Helper()
	for _, m := range tr.Harness.Metrics {
		if m.Name == name {
			return m
		}
	}
	t.Fatalf("%s has no metric %s: %+v", tr.Name, name, tr.Harness.Metrics)
	return MetricValue{}
}

func TestHarnessRunMultipleChoice(t *testing.T) {
	task := harnessTask(t, "polish_dyk_multiple_choice", "dyk-test.tsv", HarnessOptions{})
	// Choices " Nie" (3 chars) and " Tak" (3 chars); gold 1, 0, 1, 0.
	m := &scriptedModel{lls: map[string][]float64{
		"astronom": {-2, -1}, // Tak: right
		"Chopin":   {-1, -2}, // Nie: right
		"Tatr":     {-1, -3}, // Nie: wrong
		"Tadeusza": {-3, -1}, // Tak: wrong
	}}
	res, err := Run(context.Background(), m, []*Task{task}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	tr := &res.Tasks[0]
	acc := metricOf(t, tr, "acc")
	// acc 0.5 on 4: stderr sqrt(1/3)/2.
	if acc.Value != 0.5 || math.Abs(acc.Stderr-math.Sqrt(1.0/3)/2) > 1e-12 || acc.StderrMethod != "mean" {
		t.Errorf("acc %+v", acc)
	}
	// F1 of class 1 (Tak): predictions 1,0,0,1 against gold 1,0,1,0: tp 1, fp 1, fn 1.
	f1 := metricOf(t, tr, "f1")
	if math.Abs(f1.Value-0.5) > 1e-12 || f1.StderrMethod != "bootstrap" || f1.Stderr <= 0 {
		t.Errorf("f1 %+v", f1)
	}
	// Equal lengths: acc_norm picks as acc.
	if an := metricOf(t, tr, "acc_norm"); an.Value != 0.5 {
		t.Errorf("acc_norm %+v", an)
	}
	// acc_norm divides by the choice's characters: in 8tags "Film" (4)
	// at -4.4 beats "Technologie" (11) at -11.0 per character, not in sum.
	task = harnessTask(t, "polish_8tags_multiple_choice", "8tags-test.jsonl", HarnessOptions{})
	task.Harness.Docs = task.Harness.Docs[7:] // gold: Technologie
	m = &scriptedModel{lls: map[string][]float64{"smartfonów": {-4.4, -50, -50, -50, -50, -50, -50, -11}}}
	res, err = Run(context.Background(), m, []*Task{task}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if acc, an := metricOf(t, &res.Tasks[0], "acc"), metricOf(t, &res.Tasks[0], "acc_norm"); acc.Value != 0 || an.Value != 1 {
		t.Errorf("acc %v acc_norm %v; want 0 and 1", acc.Value, an.Value)
	}
}

func TestHarnessRunGenerative(t *testing.T) {
	task := harnessTask(t, "polish_cbd_regex", "cbd-test.jsonl", HarnessOptions{})
	m := &scriptedModel{gens: map[string]string{
		"Dzięki za info": " A",              // right
		"geniuszu":       " B - szyderstwo", // right
		"głąbie":         " To jest obelga", // no letter: [invalid], class 0
		"skąd on ma":     " C",              // wrong (D)
	}}
	res, err := Run(context.Background(), m, []*Task{task}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	tr := &res.Tasks[0]
	if em := metricOf(t, tr, "exact_match"); em.Value != 0.5 {
		t.Errorf("exact_match %+v", em)
	}
	if tr.Harness.Invalid != 1 || tr.Items[2].Filtered != "[invalid]" {
		t.Errorf("invalid %d, item 2 %+v", tr.Harness.Invalid, tr.Items[2])
	}
	// Macro F1 over classes 0..3 (gold 0,1,2,3; pred 0,1,0,2): F1 per class
	// 2/3, 1, 0, 0 → 5/12.
	if f1 := metricOf(t, tr, "f1"); math.Abs(f1.Value-5.0/12) > 1e-12 || f1.Aggregation != "f1_macro" {
		t.Errorf("macro f1 %+v", f1)
	}
}

func TestHarnessPolqaProcessDocs(t *testing.T) {
	// Four rows: one irrelevant, one duplicate pair; two documents remain.
	task := harnessTask(t, "polish_polqa_reranking_multiple_choice", "polqa-test.csv", HarnessOptions{})
	if task.Len() != 2 || !strings.Contains(task.Harness.Docs[1].Context, "966 roku") {
		t.Errorf("%d docs: %+v", task.Len(), task.Harness.Docs)
	}
}

func TestHarnessErrors(t *testing.T) {
	spec, _ := HarnessTaskByName("polemo2_in_multiple_choice")
	_, err := BuildHarness(spec, []Doc{{"sentence": "Dobre."}}, "", "x.jsonl", HarnessOptions{})
	if err == nil || !strings.Contains(err.Error(), `x.jsonl: document 0 has no field "target"`) {
		t.Errorf("missing field: %v", err)
	}
	_, err = BuildHarness(spec, []Doc{{"sentence": "Dobre.", "target": "pozytywny"}}, "", "x.jsonl", HarnessOptions{})
	if err == nil || !strings.Contains(err.Error(), `document 0: field "target" is "pozytywny"; want one of __label__meta_amb`) {
		t.Errorf("unknown label: %v", err)
	}
	spec, _ = HarnessTaskByName("polish_ppc_multiple_choice")
	_, err = BuildHarness(spec, []Doc{{"sentence_A": "a", "sentence_B": "b", "label": "7"}}, "", "p.jsonl", HarnessOptions{})
	if err == nil || !strings.Contains(err.Error(), "target 6 is out of range 0..2") {
		t.Errorf("label out of range: %v", err)
	}
	// A bad label in a KLEJ TSV names the line: header on 1, records from 2.
	docs, err := ReadDocsFrom(strings.NewReader("sentence\ttarget\nDobre.\t__label__meta_zero\n\"Złe,\nbardzo\"\t__label__meta_minus_m\nŚrednie.\tśrednie\n"), "test.tsv", ".tsv")
	if err != nil {
		t.Fatal(err)
	}
	spec, _ = HarnessTaskByName("polemo2_in_multiple_choice")
	_, err = BuildHarness(spec, docs, "", "test.tsv", HarnessOptions{})
	if err == nil || !strings.Contains(err.Error(), `test.tsv: line 5: field "target" is "średnie"`) {
		t.Errorf("bad label in a TSV: %v", err)
	}
	_, err = ReadDocsFrom(strings.NewReader("{\"a\": 1}\n{\"a\": \n"), "d.jsonl", ".jsonl")
	var pe *ParseError
	if !errors.As(err, &pe) || pe.Line != 2 || !strings.Contains(err.Error(), "d.jsonl: line 2") {
		t.Errorf("torn JSON: %v", err)
	}
	_, err = ReadDocsFrom(strings.NewReader("a\tb\nx\ty\nz\n"), "d.tsv", ".tsv")
	if !errors.As(err, &pe) || pe.Line != 3 {
		t.Errorf("short TSV row: %v", err)
	}
	if _, err := ReadDocsFrom(strings.NewReader(""), "e.csv", ".csv"); !errors.Is(err, ErrEmptyTask) {
		t.Errorf("empty: %v", err)
	}
}

func FuzzReadDocs(f *testing.F) {
	f.Add([]byte("{\"sentence\": \"Dobre.\", \"target\": \"__label__meta_plus_m\"}\n"), 0)
	f.Add([]byte("sentence\ttarget\nDobre.\t__label__meta_zero\n"), 1)
	f.Add([]byte("sentence,target\n\"Dobre, bardzo\",__label__meta_amb\n"), 2)
	f.Add([]byte("[{\"sentence\": \"x\", \"target\": 1}]"), 0)
	exts := []string{".jsonl", ".tsv", ".csv"}
	f.Fuzz(func(t *testing.T, data []byte, e int) {
		ext := exts[((e%3)+3)%3]
		docs, err := ReadDocsFrom(strings.NewReader(string(data)), "f"+ext, ext)
		if err != nil {
			return
		}
		spec, _ := HarnessTaskByName("polemo2_in_multiple_choice")
		task, err := BuildHarness(spec, docs, "", "f"+ext, HarnessOptions{NumFewshot: 1, Fewshot: docs})
		if err == nil && task.Len() != len(docs) {
			t.Fatalf("%d docs became %d", len(docs), task.Len())
		}
	})
}
