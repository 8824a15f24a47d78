package eval

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// The Polish tasks of speakleash's fork of lm-evaluation-harness, which the
// Open PL LLM Leaderboard runs (lm_eval/tasks/polemo2, polish_8tags,
// polish_belebele, polish_cbd, polish_dyk, polish_klej_ner, polish_polqa,
// polish_ppc, polish_psc), transcribed from their YAMLs: the prompts are
// byte for byte the doc_to_text templates, the target maps are the
// doc_to_target expressions.

// HarnessTaskNames lists the tasks HarnessTaskByName knows, sorted.
func HarnessTaskNames() []string {
	names := make([]string, 0, len(harnessTasks))
	for n := range harnessTasks {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// HarnessTaskByName returns a copy of the named task's definition.
func HarnessTaskByName(name string) (*HarnessTask, bool) {
	mk, ok := harnessTasks[name]
	if !ok {
		return nil, false
	}
	return mk(), true
}

var harnessTasks = map[string]func() *HarnessTask{}

func register(mk func() *HarnessTask) {
	harnessTasks[mk().Name] = mk
}

// labelMap is {'a': 0, 'b': 1, …}.get(field) over a text label.
func labelMap[T any](field string, m map[string]T) func(Doc) (T, error) {
	return func(d Doc) (T, error) {
		var zero T
		v, ok := d[field]
		if !ok {
			return zero, fmt.Errorf("no field %q", field)
		}
		t, ok := m[v]
		if !ok {
			keys := make([]string, 0, len(m))
			for k := range m {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			return zero, fmt.Errorf("field %q is %q; want one of %s", field, v, strings.Join(keys, ", "))
		}
		return t, nil
	}
}

// intField is {{field|int + off}} as a choice index.
func intField(field string, off int) func(Doc) (int, error) {
	return func(d Doc) (int, error) {
		n, err := pyInt(d, field)
		return n + off, err
	}
}

// letterOf is {0: 'A', 1: 'B', …}.get(field|int + off) over n letters.
func letterOf(field string, off, n int) func(Doc) (string, error) {
	return func(d Doc) (string, error) {
		i, err := pyInt(d, field)
		if err != nil {
			return "", err
		}
		i += off
		if i < 0 || i >= n {
			return "", fmt.Errorf("field %q gives answer %d, outside A..%c", field, i, 'A'+n-1)
		}
		return string(rune('A' + i)), nil
	}
}

var (
	accMetrics = []string{"acc", "acc_norm"}
	regexGen   = HarnessTask{Output: HarnessGenerateUntil, Until: []string{".", ","}, MaxGenToks: 50, Metrics: []string{"exact_match"}}
)

func withGen(t HarnessTask, base HarnessTask) *HarnessTask {
	t.Output, t.MaxGenToks = base.Output, base.MaxGenToks
	if t.Until == nil {
		t.Until = base.Until
	}
	if t.Metrics == nil {
		t.Metrics = base.Metrics
	}
	return &t
}

func init() {
	polemoMC := []string{"__label__meta_zero", "__label__meta_minus_m", "__label__meta_plus_m", "__label__meta_amb"}
	polemoIdx := map[string]int{}
	polemoLetter := map[string]string{}
	for i, l := range polemoMC {
		polemoIdx[l] = i
		polemoLetter[l] = string(rune('A' + i))
	}
	for _, split := range []string{"in", "out"} {
		register(func() *HarnessTask {
			return &HarnessTask{
				Name: "polemo2_" + split + "_multiple_choice", Dataset: "allegro/klej-polemo2-" + split,
				TargetTemplate: "{{['__label__meta_zero', '__label__meta_minus_m', '__label__meta_plus_m', '__label__meta_amb'].index(target)}}",
				Output:         HarnessMultipleChoice,
				TextTemplate:   "Opinia: \"{{sentence}}\"\nOkreśl sentyment podanej opinii: Neutralny, Negatywny, Pozytywny, Niejednoznaczny.\nSentyment:",
				Choices:        []string{"Neutralny", "Negatywny", "Pozytywny", "Niejednoznaczny"},
				Gold:           labelMap("target", polemoIdx),
				Metrics:        accMetrics,
				Required:       []string{"sentence", "target"},
			}
		})
		register(func() *HarnessTask {
			return withGen(HarnessTask{
				Name: "polemo2_" + split, Dataset: "allegro/klej-polemo2-" + split,
				TargetTemplate: "{{{'__label__meta_zero': 'A', '__label__meta_minus_m': 'B', '__label__meta_plus_m': 'C', '__label__meta_amb': 'D'}.get(target)}}",
				TextTemplate:   "Opinia: \"{{sentence}}\"\nOkreśl sentyment podanej opinii. Możliwe odpowiedzi:\nA - Neutralny\nB - Negatywny\nC - Pozytywny\nD - Niejednoznaczny\nPrawidłowa odpowiedź:",
				Target:         labelMap("target", polemoLetter),
				Filter:         `(\b[ABCD]\b)`,
				Required:       []string{"sentence", "target"},
			}, regexGen)
		})
	}

	register(func() *HarnessTask {
		return &HarnessTask{
			Name: "polish_8tags_multiple_choice", Dataset: "sdadas/8tags", Output: HarnessMultipleChoice,
			TargetTemplate: "{{label|int}}",
			TextTemplate:   "Tytuł: \"{{sentence}}\"\nDo podanego tytułu przyporządkuj jedną najlepiej pasującą kategorię z podanych: Film, Historia, Jedzenie, Medycyna, Motoryzacja, Praca, Sport, Technologie.\nKategoria:",
			Choices:        []string{"Film", "Historia", "Jedzenie", "Medycyna", "Motoryzacja", "Praca", "Sport", "Technologie"},
			Gold:           intField("label", 0),
			Metrics:        accMetrics,
			Required:       []string{"sentence", "label"},
		}
	})
	register(func() *HarnessTask {
		return withGen(HarnessTask{
			Name: "polish_8tags_regex", Dataset: "sdadas/8tags",
			TargetTemplate: "{{{0: 'A', 1: 'B', 2: 'C', 3: 'D', 4: 'E', 5: 'F', 6: 'G', 7: 'H'}.get(label)}}",
			TextTemplate:   "Tytuł: \"{{sentence}}\"\nPytanie: jaka kategoria najlepiej pasuje do podanego tytułu?\nMożliwe odpowiedzi:\nA - film\nB - historia\nC - jedzenie\nD - medycyna\nE - motoryzacja\nF - praca\nG - sport\nH - technologie\nPrawidłowa odpowiedź:",
			Target:         letterOf("label", 0, 8),
			Filter:         `(\b[ABCDEFGH]\b)`,
			Required:       []string{"sentence", "label"},
		}, regexGen)
	})

	const belebeleText = "Fragment: \"{{flores_passage}}\"\nPytanie: \"{{question}}\"\nMożliwe odpowiedzi:\nA - {{mc_answer1}}\nB - {{mc_answer2}}\nC - {{mc_answer3}}\nD - {{mc_answer4}}\nPrawidłowa odpowiedź:"
	belebeleFields := []string{"flores_passage", "question", "mc_answer1", "mc_answer2", "mc_answer3", "mc_answer4", "correct_answer_num"}
	register(func() *HarnessTask {
		return &HarnessTask{
			Name: "polish_belebele_mc", Dataset: "facebook/belebele (pol_Latn)", Output: HarnessMultipleChoice,
			TargetTemplate: "{{['1', '2', '3', '4'].index(correct_answer_num)}}",
			TextTemplate:   belebeleText,
			Choices:        []string{"A", "B", "C", "D"},
			Gold:           labelMap("correct_answer_num", map[string]int{"1": 0, "2": 1, "3": 2, "4": 3}),
			Metrics:        accMetrics,
			Required:       belebeleFields,
		}
	})
	register(func() *HarnessTask {
		return withGen(HarnessTask{
			Name: "polish_belebele_regex", Dataset: "facebook/belebele (pol_Latn)",
			TargetTemplate: "{{{0: 'A', 1: 'B', 2: 'C', 3: 'D'}.get(correct_answer_num|int - 1)}}",
			TextTemplate:   belebeleText,
			Target:         letterOf("correct_answer_num", -1, 4),
			Filter:         `(\b[ABCD]\b)`,
			Required:       belebeleFields,
		}, regexGen)
	})

	// Upstream lm-evaluation-harness's own Belebele task (lm_eval/tasks/
	// belebele), in English framing; few-shot examples are the first of
	// the test split itself.
	register(func() *HarnessTask {
		return &HarnessTask{
			Name: "belebele_pol_Latn", Dataset: "facebook/belebele (pol_Latn)", Output: HarnessMultipleChoice,
			TextTemplate:   "P: {{flores_passage}}\nQ: {{question.strip()}}\nA: {{mc_answer1}}\nB: {{mc_answer2}}\nC: {{mc_answer3}}\nD: {{mc_answer4}}\nAnswer:",
			TargetTemplate: "{{['1', '2', '3', '4'].index(correct_answer_num)}}",
			Text: func(d Doc) (string, error) {
				q := Doc{"question": strings.TrimSpace(d["question"])}
				for _, f := range []string{"flores_passage", "mc_answer1", "mc_answer2", "mc_answer3", "mc_answer4"} {
					q[f] = d[f]
				}
				return fill("P: {{flores_passage}}\nQ: {{question}}\nA: {{mc_answer1}}\nB: {{mc_answer2}}\nC: {{mc_answer3}}\nD: {{mc_answer4}}\nAnswer:", q)
			},
			Choices:         []string{"A", "B", "C", "D"},
			Gold:            labelMap("correct_answer_num", map[string]int{"1": 0, "2": 1, "3": 2, "4": 3}),
			Metrics:         accMetrics,
			Required:        belebeleFields,
			FewshotFromTest: true,
		}
	})

	register(func() *HarnessTask {
		return &HarnessTask{
			Name: "polish_dyk_multiple_choice", Dataset: "allegro/klej-dyk", Output: HarnessMultipleChoice,
			TargetTemplate: "{{target|int}}",
			TextTemplate:   "Pytanie: \"{{question}}\"\nSugerowana odpowiedź: \"{{answer}}\"\nPytanie: Czy sugerowana odpowiedź na zadane pytanie jest poprawna?\nOdpowiedz krótko \"Tak\" lub \"Nie\". Prawidłowa odpowiedź:",
			Choices:        []string{"Nie", "Tak"},
			Gold:           intField("target", 0),
			Metrics:        []string{"acc", "acc_norm", "f1"},
			Required:       []string{"question", "answer", "target"},
		}
	})
	register(func() *HarnessTask {
		return withGen(HarnessTask{
			Name: "polish_dyk_regex", Dataset: "allegro/klej-dyk",
			TargetTemplate: "{{{0: 'A', 1: 'B', 2: 'C', 3: 'D'}.get(target|int + 1)}}",
			TextTemplate:   "Pytanie: \"{{question}}\"\nSugerowana odpowiedź: \"{{answer}}\"\nCzy sugerowana odpowiedź na zadane pytanie jest poprawna? Możliwe opcje:\nA - brakuje sugerowanej odpowiedzi\nB - nie, sugerowana odpowiedź nie jest poprawna\nC - tak, sugerowana odpowiedź jest poprawna\nD - brakuje pytania\nPrawidłowa opcja:",
			Target:         letterOf("target", 1, 4),
			Filter:         `(\b[ABCD]\b)`,
			Metrics:        []string{"exact_match", "f1"},
			F1Labels:       []string{"B", "C"},
			Required:       []string{"question", "answer", "target"},
		}, regexGen)
	})

	register(func() *HarnessTask {
		return &HarnessTask{
			Name: "polish_ppc_multiple_choice", Dataset: "sdadas/ppc", Output: HarnessMultipleChoice,
			TargetTemplate: "{{label|int - 1}}",
			TextTemplate:   "Zdanie A: \"{{sentence_A}}\"\nZdanie B: \"{{sentence_B}}\"\nPytanie: jaka jest zależność między zdaniami A i B? Możliwe odpowiedzi:\nA - znaczą dokładnie to samo\nB - mają podobne znaczenie\nC - mają różne znaczenie\nPrawidłowa odpowiedź:",
			Choices:        []string{"A", "B", "C"},
			Gold:           intField("label", -1),
			Metrics:        accMetrics,
			Required:       []string{"sentence_A", "sentence_B", "label"},
		}
	})
	register(func() *HarnessTask {
		return withGen(HarnessTask{
			Name: "polish_ppc_regex", Dataset: "sdadas/ppc",
			TargetTemplate: "{{{0: 'A', 1: 'B', 2: 'C', 3: 'D'}.get(label|int)}}",
			TextTemplate:   "Zdanie A: \"{{sentence_A}}\"\nZdanie B: \"{{sentence_B}}\"\nPytanie: jaka jest zależność między zdaniami A i B? Możliwe odpowiedzi:\nA - wszystkie odpowiedzi poprawne\nB - znaczą dokładnie to samo\nC - mają podobne znaczenie\nD - mają różne znaczenie\nPrawidłowa odpowiedź:",
			Target:         letterOf("label", 0, 4),
			Filter:         `(\b[ABCD]\b)`,
			Required:       []string{"sentence_A", "sentence_B", "label"},
		}, regexGen)
	})

	register(func() *HarnessTask {
		return &HarnessTask{
			Name: "polish_psc_multiple_choice", Dataset: "allegro/klej-psc", Output: HarnessMultipleChoice,
			TargetTemplate: "{{label|int}}",
			TextTemplate:   "Tekst: \"{{extract_text}}\"\nPodsumowanie: \"{{summary_text}}\"\nPytanie: Czy podsumowanie dla podanego tekstu jest poprawne?\nOdpowiedz krótko \"Tak\" lub \"Nie\". Prawidłowa odpowiedź:",
			Choices:        []string{"Nie", "Tak"},
			Gold:           intField("label", 0),
			Metrics:        []string{"acc", "acc_norm", "f1"},
			Required:       []string{"extract_text", "summary_text", "label"},
		}
	})
	register(func() *HarnessTask {
		return withGen(HarnessTask{
			Name: "polish_psc_regex", Dataset: "allegro/klej-psc",
			TargetTemplate: "{{{0: 'A', 1: 'B', 2: 'C', 3: 'D'}.get(label|int + 1)}}",
			TextTemplate:   "Fragment 1: \"{{extract_text}}\"\nFragment 2: \"{{summary_text}}\"\nPytanie: jaka jest zależność między fragmentami 1 i 2?\nMożliwe odpowiedzi:\nA - wszystkie odpowiedzi poprawne\nB - dotyczą tego samego artykułu\nC - dotyczą różnych artykułów\nD - brak poprawnej odpowiedzi\nPrawidłowa odpowiedź:",
			Target:         letterOf("label", 1, 4),
			Filter:         `(\b[ABCD]\b)`,
			Metrics:        []string{"exact_match", "f1"},
			F1Labels:       []string{"B", "C"},
			Required:       []string{"extract_text", "summary_text", "label"},
		}, regexGen)
	})

	cbdIdx := map[string]int{"szyderstwo": 1, "obelga": 2, "insynuacja": 3, "grozba": 4, "molestowanie": 5}
	cbdGold := func(d Doc) (int, error) {
		v, ok := d["CATEGORIES"]
		if !ok {
			return 0, fmt.Errorf("no field %q", "CATEGORIES")
		}
		return cbdIdx[v], nil // .get(CATEGORIES, 0)
	}
	register(func() *HarnessTask {
		return &HarnessTask{
			Name: "polish_cbd_multiple_choice", Dataset: "ptaszynski/PolishCyberbullyingDataset", Output: HarnessMultipleChoice,
			TargetTemplate: "{{{'szyderstwo': 1, 'obelga': 2, 'insynuacja': 3, 'grozba': 4, 'molestowanie': 5}.get(CATEGORIES, 0)}}",
			TextTemplate:   "Wypowiedź: \"{{TEXT}}\"\nDo podanej wypowiedzi przyporządkuj jedną, najlepiej pasującą kategorię z podanych: nieszkodliwa, szyderstwo, obelga, insynuacja, groźba, molestowanie.\nKategoria:",
			Choices:        []string{"nieszkodliwa", "szyderstwo", "obelga", "insynuacja", "groźba", "molestowanie"},
			Gold:           cbdGold,
			Metrics:        []string{"acc", "acc_norm", "f1_macro"},
			Required:       []string{"TEXT", "CATEGORIES"},
		}
	})
	register(func() *HarnessTask {
		return withGen(HarnessTask{
			Name: "polish_cbd_regex", Dataset: "ptaszynski/PolishCyberbullyingDataset",
			TargetTemplate: "{{{'szyderstwo': 'B', 'obelga': 'C', 'insynuacja': 'D', 'grozba': 'E', 'molestowanie': 'F'}.get(CATEGORIES, 'A')}}",
			TextTemplate:   "Wypowiedź: \"{{TEXT}}\"\nPytanie: Jaka kategoria najlepiej pasuje do podanej wypowiedzi?\nMożliwe odpowiedzi:\nA - nieszkodliwa\nB - szyderstwo\nC - obelga\nD - insynuacja\nE - groźba\nF - molestowanie\nPrawidłowa odpowiedź:",
			Target: func(d Doc) (string, error) {
				g, err := cbdGold(d)
				return string(rune('A' + g)), err
			},
			Until:    []string{".", ",", ";"},
			Filter:   `(\b[ABCDEF]\b)`,
			Metrics:  []string{"exact_match", "f1_macro"},
			F1Labels: []string{"A", "B", "C", "D", "E", "F"},
			Required: []string{"TEXT", "CATEGORIES"},
		}, regexGen)
	})

	nerKeys := []string{"noEntity", "placeName", "persName", "orgName", "time", "geogName"}
	nerIdx, nerLetter := map[string]int{}, map[string]string{}
	for i, k := range nerKeys {
		nerIdx[k], nerLetter[k] = i, string(rune('A'+i))
	}
	register(func() *HarnessTask {
		return &HarnessTask{
			Name: "polish_klej_ner_multiple_choice", Dataset: "allegro/klej-nkjp-ner", Output: HarnessMultipleChoice,
			TargetTemplate: "{{{'noEntity': 0, 'placeName': 1, 'persName': 2, 'orgName': 3, 'time': 4, 'geogName': 5}.get(target)}}",
			TextTemplate:   "Zdanie: \"{{sentence}}\"\nJakiego rodzaju jest nazwana jednostka, jeżeli występuje w podanym zdaniu?\nMożliwe odpowiedzi: Brak nazwanej jednostki, Nazwa miejsca, Nazwa osoby, Nazwa organizacji, Czas, Nazwa geograficzna.\nRodzaj:",
			Choices:        []string{"Brak nazwanej jednostki", "Nazwa miejsca", "Nazwa osoby", "Nazwa organizacji", "Czas", "Nazwa geograficzna"},
			Gold:           labelMap("target", nerIdx),
			Metrics:        accMetrics,
			Required:       []string{"sentence", "target"},
		}
	})
	register(func() *HarnessTask {
		return withGen(HarnessTask{
			Name: "polish_klej_ner_regex", Dataset: "allegro/klej-nkjp-ner",
			TargetTemplate: "{{{'noEntity': 'A', 'placeName': 'B', 'persName': 'C', 'orgName': 'D', 'time': 'E', 'geogName': 'F'}.get(target)}}",
			TextTemplate:   "Zdanie: \"{{sentence}}\"\nPytanie: Jakiego rodzaju jest nazwana jednostka, jeżeli występuje w podanym zdaniu?\nMożliwe odpowiedzi:\nA - Brak nazwanej jednostki\nB - Nazwa miejsca\nC - Nazwa osoby\nD - Nazwa organizacji\nE - Czas\nF - Nazwa geograficzna\nPrawidłowa odpowiedź:",
			Target:         labelMap("target", nerLetter),
			Until:          []string{".", ",", ";"},
			Filter:         `(\b[ABCDEF]\b)`,
			Required:       []string{"sentence", "target"},
		}, regexGen)
	})

	register(func() *HarnessTask {
		return &HarnessTask{
			Name: "polish_polqa_reranking_multiple_choice", Dataset: "ipipan/polqa", Output: HarnessMultipleChoice,
			TargetTemplate: "{{relevant|int}}",
			TextTemplate:   "Kontekst: {{passage_text}} \n Pytanie: {{question}} \n Czy kontekst jest relewantny dla pytania? \n Odpowiedz krótko \"Tak\" lub \"Nie\". Prawidłowa odpowiedź:",
			Choices:        []string{"Nie", "Tak"},
			Gold:           intField("relevant", 0),
			Metrics:        accMetrics,
			Required:       []string{"passage_text", "question", "relevant"},
			Process:        polqaProcessDocs,
		}
	})
}

// polqaProcessDocs is polish_polqa's utils.process_docs: it keeps the
// relevant passages, each (passage, question) pair once, in file order.
func polqaProcessDocs(docs []Doc) ([]Doc, error) {
	type pair struct{ p, q string }
	used := map[pair]bool{}
	var out []Doc
	for i, d := range docs {
		rel, err := pyInt(d, "relevant")
		if err != nil {
			return nil, fmt.Errorf("document %d: %v", i, err)
		}
		k := pair{d["passage_text"], d["question"]}
		if rel == 0 || used[k] {
			continue
		}
		used[k] = true
		out = append(out, d)
	}
	return slices.Clip(out), nil
}
