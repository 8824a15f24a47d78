package eval

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// Kind is the kind of a task file.
type Kind string

// The task kinds.
const (
	KindOpenQA         Kind = "openqa"
	KindMultipleChoice Kind = "mc"
	KindRefusal        Kind = "refusal"
	KindVerbosity      Kind = "verbosity"
)

// ParseKind accepts a kind's name as used on the command line.
func ParseKind(s string) (Kind, error) {
	switch Kind(s) {
	case KindOpenQA, KindMultipleChoice, KindRefusal, KindVerbosity:
		return Kind(s), nil
	}
	switch s {
	case "plcc", "qa":
		return KindOpenQA, nil
	case "multiple-choice", "multiple_choice", "llmzszl":
		return KindMultipleChoice, nil
	}
	return "", fmt.Errorf("eval: unknown task kind %q; want openqa (plcc), mc (llmzszl), refusal, verbosity or an lm-evaluation-harness task (%s, …; pltune eval --list-tasks)", s, strings.Join(HarnessTaskNames()[:3], ", "))
}

// PLCCCategories are the six PLCC categories, in the order reports use.
var PLCCCategories = []string{
	"art & entertainment", "culture & tradition", "geography", "grammar", "history", "vocab",
}

// OpenQAItem is a PLCC-style open question.
type OpenQAItem struct {
	ID       string   `json:"id"`
	Category string   `json:"category"`
	Question string   `json:"question"`
	Answers  []string `json:"answers"`
	Regex    []string `json:"regex,omitempty"`

	regex []*regexp.Regexp
}

// MCItem is a multiple-choice question in LLMzSzŁ's format.
type MCItem struct {
	ID                 string   `json:"id,omitempty"`
	Question           string   `json:"question"`
	Answers            []string `json:"answers"`
	CorrectAnswerIndex int      `json:"correct_answer_index"`
	Type               string   `json:"type,omitempty"`
	Name               string   `json:"name,omitempty"`
	Year               any      `json:"year,omitempty"` // a number or a string in the wild
}

// RefusalItem is a prompt that a model should answer (benign) or refuse
// (harmful).
type RefusalItem struct {
	ID       string `json:"id"`
	Prompt   string `json:"prompt"`
	Harmful  bool   `json:"harmful"`
	Category string `json:"category,omitempty"`
}

// VerbosityItem is a prompt with a reference answer of a fitting length.
type VerbosityItem struct {
	ID        string `json:"id"`
	Prompt    string `json:"prompt"`
	Reference string `json:"reference"`
}

// Task is one task file's items. Exactly the slice matching Kind is filled.
type Task struct {
	Name      string // from the file name, without extension
	Kind      Kind
	OpenQA    []OpenQAItem
	MC        []MCItem
	Refusal   []RefusalItem
	Verbosity []VerbosityItem
	// Harness holds an lm-evaluation-harness task (KindHarness).
	Harness *HarnessItems
}

// Len returns the number of items.
func (t *Task) Len() int {
	switch t.Kind {
	case KindOpenQA:
		return len(t.OpenQA)
	case KindMultipleChoice:
		return len(t.MC)
	case KindRefusal:
		return len(t.Refusal)
	case KindVerbosity:
		return len(t.Verbosity)
	case KindHarness:
		if t.Harness != nil {
			return len(t.Harness.Docs)
		}
	}
	return 0
}

// ErrEmptyTask is returned for a task file without items.
var ErrEmptyTask = errors.New("no items")

// ParseError is a problem in a task file, with its position.
type ParseError struct {
	File string
	Line int // 1-based; 0 when the problem is not on one line
	Err  error
}

func (e *ParseError) Error() string {
	if e.Line == 0 {
		return fmt.Sprintf("eval: %s: %v", e.File, e.Err)
	}
	return fmt.Sprintf("eval: %s: line %d: %v", e.File, e.Line, e.Err)
}

func (e *ParseError) Unwrap() error { return e.Err }

// ReadTaskFile reads a task file. kind "" detects the kind from the first
// item's fields.
func ReadTaskFile(path string, kind Kind) (*Task, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("eval: %w", err)
	}
	defer f.Close()
	name := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	return ReadTask(f, filepath.Base(path), name, kind)
}

// ReadTask reads a task in JSONL from r. file names the source in errors,
// name becomes the task's name; kind "" detects the kind.
func ReadTask(r io.Reader, file, name string, kind Kind) (*Task, error) {
	t := &Task{Name: name, Kind: kind}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 16*1024*1024)
	ids := map[string]int{}
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		perr := func(err error) error { return &ParseError{File: file, Line: line, Err: err} }
		if t.Kind == "" {
			k, err := detectKind(b)
			if err != nil {
				return nil, perr(err)
			}
			t.Kind = k
		}
		id, err := t.add(b, line)
		if err != nil {
			return nil, perr(err)
		}
		if prev, dup := ids[id]; dup {
			return nil, perr(fmt.Errorf("id %q already used on line %d; ids must be unique", id, prev))
		}
		ids[id] = line
	}
	if err := sc.Err(); err != nil {
		return nil, &ParseError{File: file, Line: line + 1, Err: err}
	}
	if t.Len() == 0 {
		return nil, &ParseError{File: file, Err: ErrEmptyTask}
	}
	return t, nil
}

func detectKind(b []byte) (Kind, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil {
		return "", fmt.Errorf("not a JSON object: %v", err)
	}
	has := func(k string) bool { _, ok := fields[k]; return ok }
	switch {
	case has("correct_answer_index"):
		return KindMultipleChoice, nil
	case has("harmful"):
		return KindRefusal, nil
	case has("reference"):
		return KindVerbosity, nil
	case has("question") && has("answers"):
		return KindOpenQA, nil
	}
	return "", errors.New(`cannot tell the task kind: want "question"+"answers" (openqa), ` +
		`"correct_answer_index" (mc), "harmful" (refusal) or "reference" (verbosity); force it with kind=FILE`)
}

func strictUnmarshal(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	if err := d.Decode(v); err != nil {
		return err
	}
	if d.More() {
		return errors.New("more than one JSON value on the line")
	}
	return nil
}

// add decodes and validates one item and returns its id.
func (t *Task) add(b []byte, line int) (string, error) {
	switch t.Kind {
	case KindOpenQA:
		var it OpenQAItem
		if err := strictUnmarshal(b, &it); err != nil {
			return "", err
		}
		if err := it.validate(); err != nil {
			return "", err
		}
		t.OpenQA = append(t.OpenQA, it)
		return it.ID, nil
	case KindMultipleChoice:
		var it MCItem
		if err := strictUnmarshal(b, &it); err != nil {
			return "", err
		}
		if it.ID == "" {
			it.ID = fmt.Sprintf("line-%d", line)
		}
		if err := it.validate(); err != nil {
			return "", err
		}
		t.MC = append(t.MC, it)
		return it.ID, nil
	case KindRefusal:
		var it RefusalItem
		if err := strictUnmarshal(b, &it); err != nil {
			return "", err
		}
		if err := needIDPrompt(it.ID, it.Prompt); err != nil {
			return "", err
		}
		t.Refusal = append(t.Refusal, it)
		return it.ID, nil
	case KindVerbosity:
		var it VerbosityItem
		if err := strictUnmarshal(b, &it); err != nil {
			return "", err
		}
		if err := needIDPrompt(it.ID, it.Prompt); err != nil {
			return "", err
		}
		if strings.TrimSpace(it.Reference) == "" {
			return "", fmt.Errorf("item %q has an empty reference", it.ID)
		}
		t.Verbosity = append(t.Verbosity, it)
		return it.ID, nil
	}
	return "", fmt.Errorf("unknown task kind %q", t.Kind)
}

func needIDPrompt(id, prompt string) error {
	if id == "" {
		return errors.New(`missing "id"`)
	}
	if strings.TrimSpace(prompt) == "" {
		return fmt.Errorf("item %q has an empty prompt", id)
	}
	return nil
}

func (it *OpenQAItem) validate() error {
	if it.ID == "" {
		return errors.New(`missing "id"`)
	}
	if strings.TrimSpace(it.Question) == "" {
		return fmt.Errorf("item %q has an empty question", it.ID)
	}
	if len(it.Answers) == 0 && len(it.Regex) == 0 {
		return fmt.Errorf("item %q has neither answers nor regex; want at least one", it.ID)
	}
	for i, a := range it.Answers {
		if Normalize(a, NormalizeOptions{}) == "" {
			return fmt.Errorf("item %q: answer %d %q is empty after normalisation", it.ID, i, a)
		}
	}
	it.regex = it.regex[:0]
	for i, s := range it.Regex {
		re, err := regexp.Compile(s)
		if err != nil {
			return fmt.Errorf("item %q: regex %d: %v", it.ID, i, err)
		}
		it.regex = append(it.regex, re)
	}
	return nil
}

func (it *MCItem) validate() error {
	if strings.TrimSpace(it.Question) == "" {
		return fmt.Errorf("item %q has an empty question", it.ID)
	}
	if len(it.Answers) < 2 {
		return fmt.Errorf("item %q has %d answers; want at least 2", it.ID, len(it.Answers))
	}
	if len(it.Answers) > len(choiceLetters) {
		return fmt.Errorf("item %q has %d answers; at most %d are supported", it.ID, len(it.Answers), len(choiceLetters))
	}
	if it.CorrectAnswerIndex < 0 || it.CorrectAnswerIndex >= len(it.Answers) {
		return fmt.Errorf("item %q: correct_answer_index %d is out of range 0..%d", it.ID, it.CorrectAnswerIndex, len(it.Answers)-1)
	}
	return nil
}
