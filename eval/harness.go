package eval

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// KindHarness is a task of lm-evaluation-harness (the Open PL LLM
// Leaderboard's Polish tasks): its documents come from the dataset's own
// files and its prompts, choices and metrics from the task's YAML, which
// HarnessTask mirrors.
const KindHarness Kind = "harness"

// HarnessOutput is a harness task's output_type.
type HarnessOutput string

// The output types pltune runs.
const (
	HarnessMultipleChoice HarnessOutput = "multiple_choice"
	HarnessGenerateUntil  HarnessOutput = "generate_until"
)

// Doc is one document of a harness dataset: its fields as text. JSON numbers
// keep their text ("1", "1.0"), booleans become "True"/"False" (as Jinja
// prints Python's), lists and objects their JSON. ReadDocs also notes the
// line a document starts on, for error messages (Line).
type Doc map[string]string

// docLine is the key ReadDocs keeps a document's line under; no JSON or
// CSV field name can hold a NUL and reach it from a file.
const docLine = "\x00line"

// Line is the line of its file the document starts on, 0 when unknown.
func (d Doc) Line() int {
	n, _ := strconv.Atoi(d[docLine])
	return n
}

// where names a document in an error: its line, or its index.
func where(i int, d Doc) string {
	if n := d.Line(); n > 0 {
		return fmt.Sprintf("line %d", n)
	}
	return fmt.Sprintf("document %d", i)
}

// sameDoc compares two documents' fields as the harness compares dicts
// (the line they were read from aside).
func sameDoc(a, b Doc) bool {
	for k, v := range a {
		if k == docLine {
			continue
		}
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok && k != docLine {
			return false
		}
	}
	return true
}

// HarnessTask is one lm-evaluation-harness task, field for field as its YAML
// defines it: doc_to_text, doc_to_choice and doc_to_target become Go
// functions over the document's fields, the regex filter with take_first
// becomes Filter.
type HarnessTask struct {
	Name    string        // the harness's task name
	Dataset string        // the dataset_path the YAML reads
	Output  HarnessOutput // output_type
	// TextTemplate is doc_to_text as the YAML writes it; the {{field}}
	// substitutions are all pltune renders (Text, when set, renders
	// instead).
	TextTemplate string
	Text         func(Doc) (string, error)
	// TargetTemplate is the YAML's doc_to_target, kept for the agreement
	// test that has the harness render it; Gold and Target implement it.
	TargetTemplate string
	// Choices is doc_to_choice (multiple choice).
	Choices []string
	// Gold is doc_to_target of a multiple-choice task: an index into Choices.
	Gold func(Doc) (int, error)
	// Target is doc_to_target of a generative task.
	Target func(Doc) (string, error)
	// Until, MaxGenToks: generation_kwargs (greedy).
	Until      []string
	MaxGenToks int
	// Filter is the "score-first" filter's regex_pattern; the first match's
	// first group is the answer, "[invalid]" when nothing matches.
	Filter string
	// Metrics are metric_list's names: acc, acc_norm, exact_match, f1
	// (binary, class 1), f1_macro.
	Metrics []string
	// F1Labels maps a generative answer to its class for F1 (the task's
	// utils.f1 string_label): its index, 0 for anything else.
	F1Labels []string
	// Required are the fields every document must have.
	Required []string
	// FewshotFromTest: the YAML's fewshot_split is its test split with the
	// first_n sampler (Belebele): a document's examples are the first
	// NumFewshot+1 documents without itself.
	FewshotFromTest bool
	// Process is process_docs, when the task has one.
	Process func([]Doc) ([]Doc, error)

	filter *regexp.Regexp
}

// FewshotDelimiter separates few-shot examples and the question, the
// harness's default.
const FewshotDelimiter = "\n\n"

// HarnessDoc is a document ready to run: its context (few-shot examples
// included), and its gold answer.
type HarnessDoc struct {
	ID      string `json:"id"` // the harness's doc_id: the 0-based index after process_docs
	Context string `json:"context"`
	// Gold is the correct choice (multiple choice); Target the expected
	// answer (generative).
	Gold   int    `json:"gold"`
	Target string `json:"target,omitempty"`
}

// HarnessItems is a harness task's documents.
type HarnessItems struct {
	Spec *HarnessTask
	Docs []HarnessDoc
}

// ReadDocs reads a dataset file: JSONL (.jsonl, .json with one object per
// line, or a JSON array), CSV (.csv) or TSV (.tsv), each with a header.
func ReadDocs(path string) ([]Doc, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("eval: %w", err)
	}
	defer f.Close()
	return ReadDocsFrom(f, filepath.Base(path), strings.ToLower(filepath.Ext(path)))
}

// ReadDocsFrom reads documents from r; ext (".jsonl", ".json", ".csv",
// ".tsv") chooses the format, file names the source in errors.
func ReadDocsFrom(r io.Reader, file, ext string) ([]Doc, error) {
	switch ext {
	case ".csv", ".tsv":
		return readDelimited(r, file, ext == ".tsv")
	}
	br := bufio.NewReader(r)
	for {
		c, _, err := br.ReadRune()
		if err != nil {
			return nil, &ParseError{File: file, Err: ErrEmptyTask}
		}
		if !unicode.IsSpace(c) && c != '\uFEFF' {
			br.UnreadRune()
			if c == '[' {
				return readJSONArray(br, file)
			}
			break
		}
	}
	var docs []Doc
	sc := bufio.NewScanner(br)
	sc.Buffer(make([]byte, 0, 64*1024), 64*1024*1024)
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		d, err := decodeDoc(b)
		if err != nil {
			return nil, &ParseError{File: file, Line: line, Err: err}
		}
		delete(d, docLine)
		d[docLine] = strconv.Itoa(line)
		docs = append(docs, d)
	}
	if err := sc.Err(); err != nil {
		return nil, &ParseError{File: file, Line: line + 1, Err: err}
	}
	if len(docs) == 0 {
		return nil, &ParseError{File: file, Err: ErrEmptyTask}
	}
	return docs, nil
}

func readJSONArray(r io.Reader, file string) ([]Doc, error) {
	var raws []json.RawMessage
	if err := json.NewDecoder(r).Decode(&raws); err != nil {
		return nil, &ParseError{File: file, Err: fmt.Errorf("not a JSON array of objects: %v", err)}
	}
	docs := make([]Doc, 0, len(raws))
	for i, raw := range raws {
		d, err := decodeDoc(raw)
		if err != nil {
			return nil, &ParseError{File: file, Err: fmt.Errorf("element %d: %v", i, err)}
		}
		delete(d, docLine)
		docs = append(docs, d)
	}
	if len(docs) == 0 {
		return nil, &ParseError{File: file, Err: ErrEmptyTask}
	}
	return docs, nil
}

func decodeDoc(b []byte) (Doc, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("not a JSON object: %v", err)
	}
	if dec.More() {
		return nil, errors.New("more than one JSON value on the line")
	}
	if m == nil {
		return nil, errors.New("not a JSON object: null")
	}
	d := make(Doc, len(m))
	for k, v := range m {
		switch v := v.(type) {
		case string:
			d[k] = v
		case json.Number:
			d[k] = v.String()
		case bool:
			d[k] = map[bool]string{true: "True", false: "False"}[v]
		case nil:
			d[k] = "None"
		default:
			b, err := json.Marshal(v)
			if err != nil {
				return nil, fmt.Errorf("field %q: %v", k, err)
			}
			d[k] = string(b)
		}
	}
	return d, nil
}

func readDelimited(r io.Reader, file string, tab bool) ([]Doc, error) {
	cr := csv.NewReader(r)
	if tab {
		cr.Comma = '\t'
		cr.LazyQuotes = true
	}
	header, err := cr.Read()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &ParseError{File: file, Err: ErrEmptyTask}
		}
		return nil, &ParseError{File: file, Line: 1, Err: err}
	}
	if len(header) > 0 {
		header[0] = strings.TrimPrefix(header[0], "\uFEFF")
	}
	var docs []Doc
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				return nil, &ParseError{File: file, Line: pe.Line, Err: pe.Err}
			}
			return nil, &ParseError{File: file, Err: err}
		}
		d := make(Doc, len(header)+1)
		for i, h := range header {
			d[h] = rec[i]
		}
		line, _ := cr.FieldPos(0)
		d[docLine] = strconv.Itoa(line)
		docs = append(docs, d)
	}
	if len(docs) == 0 {
		return nil, &ParseError{File: file, Err: ErrEmptyTask}
	}
	return docs, nil
}

// HarnessOptions tunes how a harness task's documents become prompts.
type HarnessOptions struct {
	// NumFewshot examples precede each document (the harness's
	// --num_fewshot); 0 is zero-shot, as the leaderboard's 0-shot column.
	NumFewshot int
	// Fewshot are the documents examples are drawn from (the task's
	// fewshot_split, or training_split), in file order. As the harness's
	// default sampler does, each document in turn gets NumFewshot of them
	// drawn by Python's random.Random(FewshotSeed).sample, one generator
	// for the whole task. Tasks with FewshotFromTest take the first of the
	// evaluated documents instead (first_n).
	Fewshot []Doc
	// FewshotSeed is the harness's --fewshot_random_seed (0: its default,
	// 1234).
	FewshotSeed int64
}

// BuildHarness turns a dataset's documents into a task: process_docs, then
// doc_to_text, doc_to_target and the few-shot context for each. name names
// the task (the harness task's name when ""); file names the source in errors.
func BuildHarness(spec *HarnessTask, docs []Doc, name, file string, opt HarnessOptions) (*Task, error) {
	if err := spec.compile(); err != nil {
		return nil, err
	}
	docs, err := spec.prepare(docs, file)
	if err != nil {
		return nil, err
	}
	shot := func(d Doc) (string, error) {
		text, err := spec.Text(d)
		if err != nil {
			return "", err
		}
		target, err := spec.targetText(d)
		return text + TargetDelimiter + target, err
	}
	var fewshot []Doc // a separate few-shot split, sampled per document
	var pool []Doc    // FewshotFromTest: candidates, the doc itself excluded later
	switch {
	case opt.NumFewshot <= 0:
	case spec.FewshotFromTest:
		if len(docs) < opt.NumFewshot+1 {
			return nil, fmt.Errorf("eval: %s: %d-shot needs at least %d documents; the file has %d", spec.Name, opt.NumFewshot, opt.NumFewshot+1, len(docs))
		}
		pool = docs[:opt.NumFewshot+1]
	default:
		if len(opt.Fewshot) == 0 {
			return nil, fmt.Errorf("eval: %s: %d-shot needs a few-shot file (the task's training split)", spec.Name, opt.NumFewshot)
		}
		fs, err := spec.prepare(opt.Fewshot, "few-shot file")
		if err != nil {
			return nil, err
		}
		if len(fs) < opt.NumFewshot {
			return nil, fmt.Errorf("eval: %s: %d few-shot examples asked for, %d given", spec.Name, opt.NumFewshot, len(fs))
		}
		fewshot = fs
	}
	seed := opt.FewshotSeed
	if seed == 0 {
		seed = 1234
	}
	rnd := newPyRandom(uint64(max(seed, -seed)))
	if name == "" {
		name = spec.Name
	}
	t := &Task{Name: name, Kind: KindHarness, Harness: &HarnessItems{Spec: spec}}
	for i, d := range docs {
		text, err := spec.Text(d)
		if err != nil {
			return nil, &ParseError{File: file, Err: fmt.Errorf("%s: %v", where(i, d), err)}
		}
		var ex []string
		if fewshot != nil {
			for _, k := range rnd.sample(len(fewshot), opt.NumFewshot) {
				s, _ := shot(fewshot[k])
				ex = append(ex, s)
			}
		}
		if pool != nil {
			for _, p := range pool {
				if len(ex) < opt.NumFewshot && !sameDoc(p, d) {
					s, _ := shot(p)
					ex = append(ex, s)
				}
			}
		}
		hd := HarnessDoc{ID: strconv.Itoa(i), Context: strings.Join(append(ex, text), FewshotDelimiter)}
		if spec.Output == HarnessMultipleChoice {
			hd.Gold, _ = spec.Gold(d)
		} else {
			hd.Target, _ = spec.Target(d)
		}
		t.Harness.Docs = append(t.Harness.Docs, hd)
	}
	return t, nil
}

// ReadHarnessFile reads a dataset file as the harness task spec.
func ReadHarnessFile(spec *HarnessTask, path string, opt HarnessOptions) (*Task, error) {
	docs, err := ReadDocs(path)
	if err != nil {
		return nil, err
	}
	return BuildHarness(spec, docs, spec.Name, filepath.Base(path), opt)
}

// prepare checks the fields, applies process_docs and checks that every
// document renders and has a valid target.
func (s *HarnessTask) prepare(docs []Doc, file string) ([]Doc, error) {
	for i, d := range docs {
		for _, f := range s.Required {
			if _, ok := d[f]; !ok {
				return nil, &ParseError{File: file, Err: fmt.Errorf("%s has no field %q; %s wants %s (the %s dataset's columns)", where(i, d), f, s.Name, strings.Join(s.Required, ", "), s.Dataset)}
			}
		}
	}
	if s.Process != nil {
		var err error
		if docs, err = s.Process(docs); err != nil {
			return nil, &ParseError{File: file, Err: err}
		}
	}
	if len(docs) == 0 {
		return nil, &ParseError{File: file, Err: ErrEmptyTask}
	}
	for i, d := range docs {
		if _, err := s.Text(d); err != nil {
			return nil, &ParseError{File: file, Err: fmt.Errorf("%s: %v", where(i, d), err)}
		}
		if _, err := s.targetText(d); err != nil {
			return nil, &ParseError{File: file, Err: fmt.Errorf("%s: %v", where(i, d), err)}
		}
	}
	return docs, nil
}

// targetText is doc_to_target as text: the gold choice's text, or the
// generative target.
func (s *HarnessTask) targetText(d Doc) (string, error) {
	if s.Output == HarnessMultipleChoice {
		g, err := s.Gold(d)
		if err != nil {
			return "", err
		}
		if g < 0 || g >= len(s.Choices) {
			return "", fmt.Errorf("target %d is out of range 0..%d", g, len(s.Choices)-1)
		}
		return s.Choices[g], nil
	}
	return s.Target(d)
}

func (s *HarnessTask) compile() error {
	if s.Text == nil {
		tmpl := s.TextTemplate
		s.Text = func(d Doc) (string, error) { return fill(tmpl, d) }
	}
	if s.Filter != "" && s.filter == nil {
		re, err := regexp.Compile(s.Filter)
		if err != nil {
			return fmt.Errorf("eval: %s: filter: %v", s.Name, err)
		}
		s.filter = re
	}
	return nil
}

// FilterAnswer applies the task's filter to a generated answer: the first
// match of the regex (its first group), with Python's Unicode \b, stripped;
// "[invalid]" when nothing matches, as lm-evaluation-harness's RegexFilter
// with take_first.
func (s *HarnessTask) FilterAnswer(resp string) string {
	if s.Filter == "" {
		return resp
	}
	if s.compile() != nil {
		return "[invalid]"
	}
	for _, m := range s.filter.FindAllStringSubmatchIndex(resp, -1) {
		lo, hi := m[0], m[1]
		if len(m) >= 4 && m[2] >= 0 {
			lo, hi = m[2], m[3]
		}
		if !unicodeBoundaryOK(resp, m[0], m[1]) {
			continue
		}
		return strings.TrimSpace(resp[lo:hi])
	}
	return "[invalid]"
}

// unicodeBoundaryOK re-checks a match of a pattern like (\b[ABCD]\b): Go's
// \b knows only ASCII word characters, Python's re all Unicode letters and
// digits, so "AŁA" holds no letter A to Python while Go sees one.
func unicodeBoundaryOK(s string, lo, hi int) bool {
	if lo > 0 {
		r, _ := utf8.DecodeLastRuneInString(s[:lo])
		first, _ := utf8.DecodeRuneInString(s[lo:])
		if isPyWord(r) && isPyWord(first) {
			return false
		}
	}
	if hi < len(s) && hi > lo {
		r, _ := utf8.DecodeRuneInString(s[hi:])
		last, _ := utf8.DecodeLastRuneInString(s[:hi])
		if isPyWord(r) && isPyWord(last) {
			return false
		}
	}
	return true
}

func isPyWord(r rune) bool {
	return r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsNumber(r) || unicode.Is(unicode.Mn, r)
}

// f1Class maps a filtered answer to its F1 class: its index in F1Labels, 0
// when it is none of them (the tasks' utils.f1).
func (s *HarnessTask) f1Class(ans string) int {
	if i := slices.Index(s.F1Labels, ans); i >= 0 {
		return i
	}
	return 0
}

// pyInt is Jinja's int filter on a field: "1", "1.0", "True".
func pyInt(d Doc, field string) (int, error) {
	v, ok := d[field]
	if !ok {
		return 0, fmt.Errorf("no field %q", field)
	}
	v = strings.TrimSpace(v)
	switch v {
	case "True", "true":
		return 1, nil
	case "False", "false":
		return 0, nil
	}
	if n, err := strconv.Atoi(v); err == nil {
		return n, nil
	}
	if f, err := strconv.ParseFloat(v, 64); err == nil && f == float64(int(f)) {
		return int(f), nil
	}
	return 0, fmt.Errorf("field %q is %q; want an integer", field, v)
}

// fill replaces every {{field}} in tmpl with the document's field, as
// Jinja's {{field}} renders a string.
func fill(tmpl string, d Doc) (string, error) {
	var b strings.Builder
	for {
		i := strings.Index(tmpl, "{{")
		if i < 0 {
			b.WriteString(tmpl)
			return b.String(), nil
		}
		j := strings.Index(tmpl[i:], "}}")
		if j < 0 {
			return "", fmt.Errorf("template: unclosed {{ in %q", tmpl)
		}
		b.WriteString(tmpl[:i])
		name := strings.TrimSpace(tmpl[i+2 : i+j])
		v, ok := d[name]
		if !ok {
			return "", fmt.Errorf("no field %q", name)
		}
		b.WriteString(v)
		tmpl = tmpl[i+j+2:]
	}
}

// harnessJobs asks, as lm-evaluation-harness does, for one log-likelihood
// per choice (the continuation is TargetDelimiter and the choice) or for
// one greedy completion of the raw prompt, stopped at the task's until
// strings.
func (o *Options) harnessJobs(model string, t *Task) []job {
	spec := t.Harness.Spec
	var js []job
	for _, d := range t.Harness.Docs {
		if spec.Output == HarnessMultipleChoice {
			reqs := make([]LoglikelihoodRequest, len(spec.Choices))
			for i, c := range spec.Choices {
				reqs[i] = LoglikelihoodRequest{Context: d.Context, Continuation: TargetDelimiter + c}
			}
			js = append(js, job{
				task: t.Name, item: d.ID, mode: "loglikelihood", ll: reqs,
				key: recordKey(t.Name, d.ID, spec.Name, model, "loglikelihood", reqs),
			})
			continue
		}
		req := GenerateRequest{Prompt: d.Context, Stop: spec.Until, MaxTokens: spec.MaxGenToks}
		if o.MaxTokens > 0 {
			req.MaxTokens = o.MaxTokens
		}
		js = append(js, job{
			task: t.Name, item: d.ID, mode: "generate", gen: req,
			key: recordKey(t.Name, d.ID, spec.Name, model, "generate", req),
		})
	}
	return js
}

// scoreHarness computes a harness task's metrics from the cached records:
// acc and acc_norm (ArgmaxChoice), exact_match of the filtered answer, F1
// over (gold, prediction) classes, each with its standard error.
func scoreHarness(t *Task, tr *TaskResult, recs map[string]Record) {
	spec := t.Harness.Spec
	hs := &HarnessScore{Task: spec.Name, Output: spec.Output, Docs: len(t.Harness.Docs)}
	for _, d := range t.Harness.Docs {
		ir := ItemResult{ID: d.ID, Scores: map[string]float64{}}
		if spec.Output == HarnessMultipleChoice {
			r := recs["loglikelihood\x00"+d.ID]
			lps := make([]float64, len(r.Loglikelihoods))
			for k, l := range r.Loglikelihoods {
				lps[k] = l.LogProb
			}
			acc, accNorm := -1, -1
			if len(lps) == len(spec.Choices) {
				acc, accNorm = ArgmaxChoice(lps, spec.Choices)
			}
			ir.Choice, ir.ChoiceNorm, ir.Correct = ptr(acc), ptr(accNorm), ptr(acc == d.Gold)
			ir.Scores["acc"], ir.Scores["acc_norm"] = b2f(acc == d.Gold), b2f(accNorm == d.Gold)
			ir.Gold, ir.Pred = ptr(d.Gold), ptr(acc)
		} else {
			var text string
			if r, ok := recs["generate\x00"+d.ID]; ok && r.Generation != nil {
				text = r.Generation.Text
			}
			ans := spec.FilterAnswer(text)
			if ans == "[invalid]" {
				hs.Invalid++
			}
			ok := ans == d.Target
			ir.Response, ir.Filtered, ir.Correct = text, ans, ptr(ok)
			ir.Scores["exact_match"] = b2f(ok)
			if len(spec.F1Labels) > 0 {
				ir.Gold, ir.Pred = ptr(spec.f1Class(d.Target)), ptr(spec.f1Class(ans))
			}
		}
		tr.Items = append(tr.Items, ir)
	}
	for _, m := range spec.Metrics {
		switch m {
		case "f1", "f1_macro":
			// The harness reports both under its utils.f1's name.
			hs.Metrics = append(hs.Metrics, seriesOf(tr.Items, m, "f1", nil).metricValue())
		default:
			hs.Metrics = append(hs.Metrics, seriesOf(tr.Items, aggMean, m, nil).metricValue())
		}
	}
	tr.Harness = hs
}

// LMEvalConfig returns the task as an lm-evaluation-harness task config
// (the YAML's fields as a map, dataset left to the caller): what the
// agreement test hands the harness, and a way to run pltune's transcription
// in the harness itself. process_docs is named, not included, since it is
// Python code.
func (s *HarnessTask) LMEvalConfig() map[string]any {
	cfg := map[string]any{
		"task":          s.Name,
		"output_type":   string(s.Output),
		"test_split":    "test",
		"doc_to_text":   s.TextTemplate,
		"doc_to_target": s.TargetTemplate,
	}
	if s.Output == HarnessMultipleChoice {
		cfg["doc_to_choice"] = s.Choices
	} else {
		cfg["generation_kwargs"] = map[string]any{"until": s.Until, "do_sample": false, "temperature": 0.0, "max_gen_toks": s.MaxGenToks}
		if s.Filter != "" {
			cfg["filter_list"] = []any{map[string]any{"name": "score-first", "filter": []any{
				map[string]any{"function": "regex", "regex_pattern": s.Filter},
				map[string]any{"function": "take_first"},
			}}}
		}
	}
	var metrics []any
	for _, m := range s.Metrics {
		if m == "acc" || m == "acc_norm" || m == "exact_match" {
			metrics = append(metrics, map[string]any{"metric": m, "aggregation": "mean", "higher_is_better": true})
		}
	}
	cfg["metric_list"] = metrics
	if s.FewshotFromTest {
		cfg["fewshot_split"] = "test"
		cfg["fewshot_config"] = map[string]any{"sampler": "first_n"}
	}
	if s.Process != nil {
		cfg["process_docs"] = s.Name
	}
	return cfg
}
